/**
 * @module
 * Database provisioning on a PostgreSQL server through an admin connection: `ensureDatabase` for start
 * scripts (each region's database), `dropDatabase` for teardown. Names are checked, never interpolated
 * unchecked.
 */

import postgres from "postgres";

const SAFE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Creates database `name` through the admin URL unless it exists; resolves with whether it created it. */
export async function ensureDatabase(adminUrl: string, name: string): Promise<boolean> {
  assertSafeName(name);
  return await withAdmin(adminUrl, async (admin) => {
    const found = await admin`select 1 from pg_database where datname = ${name}`;
    if (found.length > 0) return false;
    try {
      await admin.unsafe(`create database "${name}"`);
      return true;
    } catch (error) {
      // Another process created it between the check and the create (42P04 duplicate_database).
      if ((error as { code?: string }).code === "42P04") return false;
      throw error;
    }
  });
}

/** Drops database `name` (if it exists) even while clients are still connected to it. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  assertSafeName(name);
  await withAdmin(adminUrl, async (admin) => void await admin.unsafe(`drop database if exists "${name}" with (force)`));
}

async function withAdmin<T>(adminUrl: string, work: (admin: postgres.Sql) => Promise<T>): Promise<T> {
  const admin = postgres(adminUrl, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    return await work(admin);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

function assertSafeName(name: string): void {
  if (!SAFE_NAME.test(name)) {
    throw new TypeError(
      `Cannot create database "${name}": use lower-case letters, digits and "_" (63 at most)`,
    );
  }
}
