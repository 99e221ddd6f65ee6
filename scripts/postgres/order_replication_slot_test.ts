/**
 * Order replication whose publisher lost the subscription's slot (`infra:down east --purge`, a slot dropped
 * by hand or invalidated past `max_slot_wal_keep_size`): the replica's subscription still exists but its apply
 * worker fails forever. A second setup must notice, re-sync the replica from the writer and get orders flowing
 * again, not report the link "unchanged". On throw-away databases of the project clusters (scripts/postgres).
 */
import assert from "node:assert/strict";
import { dropDatabase, ensureDatabase } from "../../shared/adapters/postgres/provision.ts";
import { dropReplicationSlot, ensureSubscription } from "../../shared/adapters/postgres/replication.ts";
import { migrate } from "../../shared/ports/sql_migrate.ts";
import type { Sql } from "../../shared/ports/mod.ts";
import { SINGLE_WRITER_MIGRATIONS } from "./infra_replication.ts";
import { clusterUrl } from "./mod.ts";
import { loseSlot, withRegionDatabases } from "./_region_databases_for_test.ts";
import { tableParity } from "./table_parity.ts";
import { ensureOrderReplication, ORDER_PUBLICATION, orderParity, orderSubscriptionName } from "./order_replication.ts";

const quiet = () => {};
const REPLICATED_WITHIN_MS = 10_000;

async function placeOrder(sql: Sql, userId: string): Promise<string> {
  const id = crypto.randomUUID();
  const at = new Date();
  await sql.transaction(async (tx) => {
    await tx.query`insert into orders (id, user_id, status, total_amount, currency, created_at, updated_at)
      values (${id}, ${userId}, 'PENDING', '10.00', 'USD', ${at}, ${at})`;
    await tx.query`insert into order_status_history (order_id, from_status, to_status, reason, actor, at)
      values (${id}, null, 'PENDING', 'placed', ${userId}, ${at})`;
  });
  return id;
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const started = performance.now();
  while (!(await probe())) {
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const hasOrder = async (sql: Sql, id: string) => (await sql.query`select 1 from orders where id = ${id}`).length > 0;

Deno.test({
  name: "ensureOrderReplication() re-syncs a replica whose slot the writer lost, and new orders replicate again",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvs", async ({ dbs, east, west }) => {
      const subscription = orderSubscriptionName(dbs, "east");
      await ensureOrderReplication(dbs, { log: quiet, initialSyncTimeoutMs: 20_000 });
      const before = await placeOrder(east, "u-before");
      await waitFor("first order in west", () => hasOrder(west, before), REPLICATED_WITHIN_MS);

      // What a purge of east leaves for this link: the slot is gone, west's subscription is not.
      await loseSlot(subscription);
      const whileBroken = await placeOrder(east, "u-while-broken");

      const lines: string[] = [];
      const again = await ensureOrderReplication(dbs, { log: (l) => lines.push(l), initialSyncTimeoutMs: 20_000 });
      // A new order streams; the one written while the link was broken came with the copy.
      const after = await placeOrder(east, "u-after");
      await waitFor("order placed after the re-sync in west", () => hasOrder(west, after), REPLICATED_WITHIN_MS);
      assert.equal(await hasOrder(west, whileBroken), true);
      assert.equal(again.outcome, "re-synced", lines.join("\n"));
      const parity = await orderParity(dbs);
      assert.deepEqual([parity.east, parity.missingInEast, parity.missingInWest], [3, [], []]);
      // Healthy again: a third run leaves it alone.
      assert.equal((await ensureOrderReplication(dbs, { log: quiet })).outcome, "unchanged");
    });
  },
});

Deno.test({
  name: "ensureOrderReplication() after the writer's database was purged makes the replica a copy of the new one",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvp", async ({ dbs, names, east, west }) => {
      const subscription = orderSubscriptionName(dbs, "east");
      await ensureOrderReplication(dbs, { log: quiet, initialSyncTimeoutMs: 20_000 });
      const old = await placeOrder(east, "u-old");
      await waitFor("old order in west", () => hasOrder(west, old), REPLICATED_WITHIN_MS);

      // East's data goes (as `infra:down east --purge` then `start:infra` leave it: empty, migrated again).
      // The adapter's drop, too, must win against west's apply worker re-taking the slot.
      assert.equal(await dropReplicationSlot(dbs.east, subscription), true);
      await dropDatabase(clusterUrl("east"), names.east);
      await ensureDatabase(clusterUrl("east"), names.east);
      await migrate(east, SINGLE_WRITER_MIGRATIONS);

      const lines: string[] = [];
      const again = await ensureOrderReplication(dbs, { log: (l) => lines.push(l), initialSyncTimeoutMs: 20_000 });
      assert.equal(again.writer, "east");
      assert.equal(again.outcome, "re-synced");
      // West's rows east no longer has are discarded, and said so.
      assert.equal(await hasOrder(west, old), false);
      assert.match(lines.join("\n"), /1 orders? the writer east lacks/);
      const fresh = await placeOrder(east, "u-fresh");
      await waitFor("new order in west", () => hasOrder(west, fresh), REPLICATED_WITHIN_MS);
      await waitFor("every replicated table equal", async () => (await tableParity(dbs)).every((t) => t.equal), 10_000);
    });
  },
});

Deno.test({
  name: "ensureSubscription() refuses to call an existing subscription whose slot the publisher lost unchanged",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bva", async ({ dbs }) => {
      const spec = {
        subscriberUrl: dbs.west,
        publisherUrl: dbs.east,
        publication: ORDER_PUBLICATION,
        subscription: orderSubscriptionName(dbs, "east"),
        copyData: true,
        synchronousCommit: "off",
      } as const;
      await ensureOrderReplication(dbs, { log: quiet, initialSyncTimeoutMs: 20_000 });
      assert.equal(await ensureSubscription(spec), "unchanged");
      await dropReplicationSlot(dbs.east, spec.subscription);
      // By name, not by class: this file also runs against the code before the error existed.
      await assert.rejects(ensureSubscription(spec), (error: Error) => {
        assert.equal(error.name, "SubscriptionSlotLostError");
        assert.match(error.message, /its slot is missing on the publisher/);
        return true;
      });
    });
  },
});
