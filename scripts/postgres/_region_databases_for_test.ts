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
import { ensurePublication, ensureSubscription } from "../../shared/adapters/postgres/replication.ts";
import {
  ORDER_PUBLICATION,
  type OrderDatabases,
  orderSubscriptionName,
  teardownOrderReplication,
} from "./order_replication.ts";

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

const SLOT_DROPPED_WITHIN_MS = 10_000;

/**
 * Drops `slot` from east's cluster as a purge loses it. West's apply worker re-takes an active slot within
 * about a second of its sender ending, so: end the sender, wait for it to exit, drop; again while it is held.
 * (On its own, not through the adapter's `dropReplicationSlot`, so the tests also run on the code before.)
 */
export async function loseSlot(slot: string): Promise<void> {
  const admin = createPostgresSql({ url: clusterUrl("east"), maxConnections: 1 });
  const started = performance.now();
  try {
    for (;;) {
      await admin.query`select pg_terminate_backend(active_pid, 5000) from pg_replication_slots
        where slot_name = ${slot} and active_pid is not null`;
      try {
        await admin.query`select pg_drop_replication_slot(${slot})`;
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== "55006") throw error; // 55006: taken again meanwhile
      }
      if (performance.now() - started > SLOT_DROPPED_WITHIN_MS) {
        throw new Error(`slot ${slot} not dropped within ${SLOT_DROPPED_WITHIN_MS} ms`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await admin.close();
  }
}

/**
 * Links east (writer) to west with only `tables` published, as an older release did (before auth or webhooks
 * replicated): the starting point of an upgrade, which `ensureOrderReplication` then completes.
 */
export async function linkTablesOnly(dbs: OrderDatabases, tables: readonly string[]): Promise<void> {
  await ensurePublication(dbs.east, ORDER_PUBLICATION, tables);
  await ensureSubscription({
    subscriberUrl: dbs.west,
    publisherUrl: dbs.east,
    publication: ORDER_PUBLICATION,
    subscription: orderSubscriptionName(dbs, "east"),
    copyData: true,
    synchronousCommit: "off",
  });
}
