/**
 * @module
 * Throw-away PostgreSQL databases for tests (one per test file run). Provisioning itself lives in the
 * postgres adapter (`shared/adapters/postgres/provision.ts`).
 */

import { dropDatabase, ensureDatabase } from "../adapters/postgres/provision.ts";
import { realInfra } from "./real_infra.ts";
import { uniqueName } from "./unique.ts";

/** A fresh `bv_test_<unique>` database on the real server; `drop()` removes it even with open connections. */
export async function createTestDatabase(
  adminUrl: string = realInfra.postgresAdminUrl,
): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = uniqueName("bv_test");
  await ensureDatabase(adminUrl, name);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => dropDatabase(adminUrl, name),
  };
}

export { dropDatabase, ensureDatabase };
