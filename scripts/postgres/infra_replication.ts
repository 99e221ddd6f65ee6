/**
 * @module
 * Order replication as `start:infra` runs it: decided from the config (each region's database URL and
 * `BV_ORDER_REPLICATION`), skipped with one line when the regions share a server or the writer's server
 * cannot publish (`wal_level` below `logical`, as on the shared 5432), set up otherwise.
 */
import type { Config } from "../../shared/config/config.ts";
import { walLevel } from "../../shared/adapters/postgres/replication.ts";
import {
  ensureOrderReplication,
  type OrderDatabases,
  prepareSynchronousWriter,
  readWriterRoles,
} from "./order_replication.ts";

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
 * Before the services start: with `BV_ORDER_REPLICATION=sync`, the writer's database is made to wait for
 * its standby (a setting sessions read when they connect, so it must precede the services' pools).
 */
export async function prepareOrderReplication(config: Config): Promise<void> {
  if (config.BV_ORDER_REPLICATION !== "sync" || (await unsupportedReason(config)) !== undefined) return;
  const dbs = orderDatabasesOf(config);
  // On a first start the role table does not exist yet; east is the writer then.
  const roles = await readWriterRoles(dbs).catch(() => undefined);
  const writer = roles?.east?.writer ?? roles?.west?.writer ?? "east";
  await prepareSynchronousWriter(dbs[writer]);
}

/** After the services have migrated both databases: publication in the writer, subscription in the replica. */
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
