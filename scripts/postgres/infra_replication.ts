/**
 * @module
 * Single-writer replication (orders, catalog, inventory, carts, auth) as `start:infra` runs it: decided from the
 * config (each region's database URL and `BV_ORDER_REPLICATION`), skipped with one line when the regions share
 * a server or the writer's server cannot publish (`wal_level` below `logical`, as on the shared 5432), set up
 * before the services start otherwise.
 */
import type { Config } from "../../shared/config/config.ts";
import { walLevel } from "../../shared/adapters/postgres/replication.ts";
import { createPostgresSql } from "../../shared/adapters/postgres/mod.ts";
import { migrate } from "../../shared/ports/sql_migrate.ts";
import { ECOMMERCE_MIGRATIONS } from "../../regional/ecommerce/mod.ts";
import { authMigrations } from "../../regional/security/auth/mod.ts";
import {
  ensureOrderReplication,
  type OrderDatabases,
  prepareSynchronousWriter,
  readWriterRoles,
} from "./order_replication.ts";

/**
 * The schemas of every single-writer table (e-commerce's and auth's), so both regions' copies exist and match
 * before the link. Either order works: both create the writer row and its guard function when missing.
 */
export const SINGLE_WRITER_MIGRATIONS = Object.freeze([...ECOMMERCE_MIGRATIONS, ...authMigrations]);

/** Each region's database URL from the config. */
export function orderDatabasesOf(config: Config): OrderDatabases {
  return { east: config.regions.east.pgUrl, west: config.regions.west.pgUrl };
}

/** Why replication cannot run for this config, or undefined when it can. */
async function unsupportedReason(config: Config): Promise<string | undefined> {
  const [east, west] = [new URL(config.regions.east.pgAdminUrl), new URL(config.regions.west.pgAdminUrl)];
  if (east.host === west.host) return `both regions use the server ${east.host}`;
  const levels = await Promise.all([walLevel(config.regions.east.pgUrl), walLevel(config.regions.west.pgUrl)]);
  if (levels.some((level) => level !== "logical")) return `wal_level is ${levels.join("/")} (east/west), not logical`;
  return undefined;
}

/**
 * Before the services start: both regions' e-commerce and auth schemas are migrated here and the regions linked, so the
 * replica region forwards its first write and serves its first read from the copy (linked after the
 * services, a client quick off the mark could write catalog or carts into west, which the link then
 * refuses to overwrite, or read a product east has and west does not yet). With `BV_ORDER_REPLICATION=sync`,
 * the writer's database is first made to wait for its standby (a setting sessions read when they connect,
 * so it must precede the services' pools).
 */
export async function prepareOrderReplication(config: Config): Promise<void> {
  if ((await unsupportedReason(config)) !== undefined) return;
  const dbs = orderDatabasesOf(config);
  if (config.BV_ORDER_REPLICATION === "sync") {
    // On a first start the role table does not exist yet; east is the writer then.
    const roles = await readWriterRoles(dbs).catch(() => undefined);
    const writer = roles?.east?.writer ?? roles?.west?.writer ?? "east";
    await prepareSynchronousWriter(dbs[writer]);
  }
  for (const url of [dbs.east, dbs.west]) {
    // The services' own migrate() then finds everything applied (the runner is idempotent and locked).
    const sql = createPostgresSql({ url, maxConnections: 1 });
    try {
      await migrate(sql, SINGLE_WRITER_MIGRATIONS);
    } finally {
      await sql.close();
    }
  }
  await setUpOrderReplication(config);
}

/** With both databases migrated: publication in the writer, subscription in the replica (idempotent). */
export async function setUpOrderReplication(config: Config): Promise<void> {
  const reason = await unsupportedReason(config);
  if (reason !== undefined) {
    console.log(`start:infra: order replication off (${reason}); each region writes its own orders`);
    return;
  }
  await ensureOrderReplication(orderDatabasesOf(config), {
    synchronous: config.BV_ORDER_REPLICATION === "sync",
    log: (line) => console.log(`start:infra: ${line}`),
  });
}
