/**
 * @module
 * A fresh migrated e-commerce and auth database per region on the project clusters, for the replication tests: brought up
 * when not running, unlinked and dropped whatever the test did.
 */
import { createPostgresSql } from "../../shared/adapters/postgres/mod.ts";
import { dropDatabase, ensureDatabase } from "../../shared/adapters/postgres/provision.ts";
import { migrate } from "../../shared/ports/sql_migrate.ts";
import type { Sql } from "../../shared/ports/mod.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { SINGLE_WRITER_MIGRATIONS } from "./infra_replication.ts";
import { clusterUrl, ensurePostgres } from "./mod.ts";
import { type OrderDatabases, teardownOrderReplication } from "./order_replication.ts";

/** What a test body gets: the two databases' URLs and names, and a pool on each. */
export interface RegionDatabases {
  readonly dbs: OrderDatabases;
  readonly names: Record<"east" | "west", string>;
  readonly east: Sql;
  readonly west: Sql;
}

/** Runs `body` on a fresh migrated database per region (named after `prefix`), then unlinks and drops both. */
export async function withRegionDatabases(
  prefix: string,
  body: (regions: RegionDatabases) => Promise<void>,
): Promise<void> {
  const quiet = () => {};
  await Promise.all([ensurePostgres("east", { log: quiet }), ensurePostgres("west", { log: quiet })]);
  const id = uniqueName(prefix);
  const names = { east: `${id}_east`, west: `${id}_west` };
  const dbs: OrderDatabases = { east: clusterUrl("east", names.east), west: clusterUrl("west", names.west) };
  await ensureDatabase(clusterUrl("east"), names.east);
  await ensureDatabase(clusterUrl("west"), names.west);
  const east = createPostgresSql({ url: dbs.east, maxConnections: 2 });
  const west = createPostgresSql({ url: dbs.west, maxConnections: 2 });
  try {
    for (const sql of [east, west]) await migrate(sql, SINGLE_WRITER_MIGRATIONS);
    await body({ dbs, names, east, west });
  } finally {
    await east.close();
    await west.close();
    await teardownOrderReplication(dbs);
    await dropDatabase(clusterUrl("west"), names.west);
    await dropDatabase(clusterUrl("east"), names.east);
  }
}
