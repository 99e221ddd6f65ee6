/**
 * @module
 * A tiny migration runner over the SQL port. Each migration runs in its own transaction together with the
 * row that records it, under a transaction-scoped advisory lock, so two processes starting at once apply
 * each migration exactly once (the second waits, then sees the row and skips).
 */

import type { Sql } from "./sql.ts";

/** One schema change; `id` is its permanent name (for example `"0001_orders"`) and sorts in apply order. */
export interface Migration {
  readonly id: string;
  readonly sql: string;
}

/** The advisory-lock key every BitVelocity process uses for migrations (an arbitrary constant: "bvmigr"). */
const MIGRATION_LOCK_KEY = 0x62766d69677231n;

/** Applies the migrations not applied yet, in the given order; resolves with the ids it applied. */
export async function migrate(sql: Sql, migrations: readonly Migration[]): Promise<string[]> {
  assertWellFormed(migrations);
  const applied: string[] = [];
  for (const migration of migrations) {
    const ran = await sql.transaction(async (tx) => {
      await tx.query`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY.toString()}::int8)`;
      // Created under the lock: two concurrent `create table if not exists` can otherwise collide.
      await tx.exec(
        "create table if not exists schema_migrations (id text primary key, applied_at timestamptz not null default now())",
      );
      const done = await tx.query`select 1 from schema_migrations where id = ${migration.id}`;
      if (done.length > 0) return false;
      await tx.exec(migration.sql);
      await tx.query`insert into schema_migrations (id, applied_at) values (${migration.id}, now())`;
      return true;
    });
    if (ran) applied.push(migration.id);
  }
  return applied;
}

function assertWellFormed(migrations: readonly Migration[]): void {
  const seen = new Set<string>();
  for (const { id, sql } of migrations) {
    if (id.trim() === "") {
      throw new TypeError("Cannot migrate: a migration has an empty id; give each one a name");
    }
    if (seen.has(id)) throw new TypeError(`Cannot migrate: id "${id}" appears twice; ids must be unique`);
    if (sql.trim() === "") throw new TypeError(`Cannot migrate: migration "${id}" has no SQL`);
    seen.add(id);
  }
}
