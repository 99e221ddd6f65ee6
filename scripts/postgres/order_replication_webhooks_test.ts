/**
 * Partner webhook subscriptions a replica region holds on its own survive linking it to the writer
 * (scripts/postgres/order_replication.ts): a first link, upgrading a link made before webhooks replicated, and such
 * a link whose slot the writer lost all merge them into the writer before the replica's webhook tables are emptied
 * for the copy. Throw-away databases on the project's east and west clusters.
 */
import assert from "node:assert/strict";
import type { Sql } from "../../shared/ports/mod.ts";
import { linkTablesOnly, loseSlot, withRegionDatabases } from "./_region_databases_for_test.ts";
import { ensureOrderReplication, orderSubscriptionName, SINGLE_WRITER_TABLES } from "./order_replication.ts";
import { tableParity } from "./table_parity.ts";

/** A subscription row as the subscriptions API writes it (the secret sealed or plain: copied as it is). */
async function subscribe(sql: Sql, owner: string, status = "ACTIVE"): Promise<string> {
  const id = crypto.randomUUID();
  await sql.query`insert into webhook_subscriptions (id, owner_user_id, url, event_types, secret, status)
    values (${id}, ${owner}, ${`https://${owner}.example/hooks`}, ${["ecommerce.order.order.created.v1"]},
      ${`plain:whsec_${id}`}, ${status})`;
  return id;
}

/** One delivery attempt of `subscriptionId` (history: the replica's are not merged). */
async function attempt(sql: Sql, subscriptionId: string): Promise<void> {
  await sql.query`insert into webhook_delivery_attempts (delivery_id, subscription_id, event_id, event_type, attempt,
      outcome) values (${crypto.randomUUID()}, ${subscriptionId}, ${crypto.randomUUID()},
      'ecommerce.order.order.created.v1', 1, 'DELIVERED')`;
}

async function subscriptions(sql: Sql): Promise<string[]> {
  const rows = await sql.query<{ row: string }>`
    select id::text || ' ' || owner_user_id || ' ' || status || ' ' || secret as row from webhook_subscriptions`;
  return rows.map((r) => r.row).sort();
}

/** The previous release's link: every single-writer table but the webhook ones. */
function linkWithoutWebhooks(dbs: { east: string; west: string }): Promise<void> {
  return linkTablesOnly(dbs, SINGLE_WRITER_TABLES.filter((t) => !t.startsWith("webhook_")));
}

/** East's and west's own subscriptions (west: one live with an attempt, one deleted), east's with an attempt. */
async function subscriptionsInBothRegions(east: Sql, west: Sql): Promise<string[]> {
  const eastOwn = await subscribe(east, "partner-east");
  await attempt(east, eastOwn);
  const westOwn = await subscribe(west, "partner-west");
  await attempt(west, westOwn);
  const westDeleted = await subscribe(west, "partner-west", "DELETED");
  return [
    `${eastOwn} partner-east ACTIVE plain:whsec_${eastOwn}`,
    `${westDeleted} partner-west DELETED plain:whsec_${westDeleted}`,
    `${westOwn} partner-west ACTIVE plain:whsec_${westOwn}`,
  ].sort();
}

/** Both regions hold every subscription (same id, owner, status, secret) and the writer's attempts only. */
async function assertMerged(east: Sql, west: Sql, expected: string[], lines: string[]): Promise<void> {
  for (const [region, sql] of Object.entries({ east, west })) {
    assert.deepEqual(await subscriptions(sql), expected, `${region}\n${lines.join("\n")}`);
    assert.equal((await sql.query`select 1 from webhook_delivery_attempts`).length, 1, region);
  }
}

const webhookTables = (t: { table: string }) => t.table.startsWith("webhook_");

Deno.test({
  name: "a first link keeps the webhook subscriptions the replica made before it (merged into the writer)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvwf", async ({ dbs, east, west }) => {
      const expected = await subscriptionsInBothRegions(east, west);
      const lines: string[] = [];
      await ensureOrderReplication(dbs, { log: (line) => lines.push(line) });
      await assertMerged(east, west, expected, lines);
      const parity = (await tableParity(dbs)).filter(webhookTables);
      assert.equal(parity.length, 2);
      assert.ok(parity.every((t) => t.equal), JSON.stringify(parity));
      assert.ok(lines.some((l) => l.includes("2 webhook subscriptions west made on its own")), lines.join("\n"));
    });
  },
});

Deno.test({
  name: "upgrading a link made before webhooks replicated keeps the replica's webhook subscriptions",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvwu", async ({ dbs, east, west }) => {
      await linkWithoutWebhooks(dbs);
      const expected = await subscriptionsInBothRegions(east, west);
      const lines: string[] = [];
      await ensureOrderReplication(dbs, { log: (line) => lines.push(line) });
      await assertMerged(east, west, expected, lines);
      assert.ok((await tableParity(dbs)).filter(webhookTables).every((t) => t.equal));
      // Linked: the replica's copy refuses local writes (its e-commerce service forwards them to the writer).
      await assert.rejects(subscribe(west, "partner-west"), (error: { code?: string }) => error.code === "25006");
    });
  },
});

Deno.test({
  name:
    "upgrading a link made before webhooks replicated, whose slot the writer lost, keeps the replica's subscriptions",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvwl", async ({ dbs, east, west }) => {
      await linkWithoutWebhooks(dbs);
      const expected = await subscriptionsInBothRegions(east, west);
      await loseSlot(orderSubscriptionName(dbs, "east"));
      const lines: string[] = [];
      const link = await ensureOrderReplication(dbs, { log: (line) => lines.push(line) });
      assert.equal(link.outcome, "re-synced", lines.join("\n"));
      await assertMerged(east, west, expected, lines);
    });
  },
});
