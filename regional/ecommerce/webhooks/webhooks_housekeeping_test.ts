/**
 * Webhooks housekeeping and bounds on PGlite: old delivery attempt rows are purged in bounded batches, a fan-out
 * cut at FANOUT_MAX is counted, and the webhook variables of the platform config.
 */
import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { loadConfig, WEBHOOK_SECRETS_KEY_DEV_DEFAULT } from "../../../shared/config/config.ts";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCreated } from "../../../shared/contracts/events/ecommerce.ts";
import { metrics } from "../../../shared/observability/mod.ts";
import { waitFor } from "../../../shared/ports/contract/_wait_for.ts";
import type { WorkQueue } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { FANOUT_MAX, startDispatcher } from "./dispatcher.ts";
import { DEFAULT_RETRY_DELAYS_MS, purgeDeliveryAttempts, webhooksMigrations } from "./mod.ts";

const DAY_MS = 24 * 60 * 60_000;

Deno.test("purgeDeliveryAttempts() deletes attempt rows past the retention, a bounded batch per statement", async () => {
  const sql = await createPgliteSql();
  try {
    await migrate(sql, [...outboxMigrations, ...webhooksMigrations]);
    const subscriptionId = crypto.randomUUID();
    await sql.query`
      insert into webhook_subscriptions (id, owner_user_id, url, event_types, secret)
      values (${subscriptionId}, 'p', 'https://partner.example/h', array['e']::text[], 'plain:x')`;
    // 25 rows 8 days old, 5 rows 6 days old.
    for (const [ageDays, count] of [[8, 25], [6, 5]]) {
      await sql.query`
        insert into webhook_delivery_attempts
          (delivery_id, subscription_id, event_id, event_type, attempt, outcome, attempted_at)
        select gen_random_uuid(), ${subscriptionId}, gen_random_uuid(), 'e', 1, 'DELIVERED',
               now() - ${ageDays} * interval '1 day'
        from generate_series(1, ${count})`;
    }
    const remaining = async () =>
      (await sql.query<{ n: number }>`select count(*)::int as n from webhook_delivery_attempts`)[0].n;
    // 2 statements of 10: 20 of the 25 old rows; the rest waits for the next run.
    assert.equal(await purgeDeliveryAttempts(sql, 7 * DAY_MS, { batch: 10, statementsMax: 2 }), 20);
    assert.equal(await remaining(), 10);
    assert.equal(await purgeDeliveryAttempts(sql, 7 * DAY_MS, { batch: 10, statementsMax: 2 }), 5);
    assert.equal(await remaining(), 5, "rows younger than the retention stay");
    await assert.rejects(purgeDeliveryAttempts(sql, 1_000), RangeError);
  } finally {
    await sql.close();
  }
});

Deno.test({
  name: "a fan-out cut at FANOUT_MAX enqueues the first FANOUT_MAX and is counted",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    const eventLog = createMemoryEventLog();
    try {
      await migrate(sql, [...outboxMigrations, ...webhooksMigrations]);
      await sql.query`
        insert into webhook_subscriptions (id, owner_user_id, url, event_types, secret)
        select gen_random_uuid(), 'p-' || n, 'https://partner.example/h', array[${orderCreated.eventType}]::text[],
               'plain:x'
        from generate_series(1, ${FANOUT_MAX + 1}) as n`;
      let published = 0;
      const queue = { publish: () => Promise.resolve(void published++) } as unknown as WorkQueue;
      const cutBefore = await cutCount();
      const dispatcher = await startDispatcher({ sql, eventLog, queue, groupId: "fanout-test" });
      try {
        await dispatcher.ready;
        const event = createEnvelope(orderCreated, {
          orderId: "o-1",
          userId: "u-1",
          totalAmount: "1.00",
          currency: "USD",
          items: [{ productId: "p-1", qty: 1, price: "1.00" }],
        }, { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "c-1" });
        await eventLog.publish(event.eventType, [{ key: "o-1", value: JSON.stringify(event) }]);
        await waitFor("the fan-out", () => published === FANOUT_MAX, { timeoutMs: 30_000 });
        assert.equal(await cutCount(), cutBefore + 1, "the cut is counted");
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(published, FANOUT_MAX);
      } finally {
        await dispatcher.close();
      }
    } finally {
      await eventLog.close();
      await sql.close();
    }
  },
});

async function cutCount(): Promise<number> {
  const metric = await metrics.registry.getSingleMetric("bv_webhook_fanout_cut_total")?.get();
  return metric?.values.reduce((sum, value) => sum + value.value, 0) ?? 0;
}

Deno.test("config: the webhook schedule, timeout, breaker, endpoint concurrency, overlap, retention, previous key and unreadable-secret grace are variables", () => {
  const defaults = loadConfig({});
  assert.deepEqual(defaults.BV_WEBHOOK_RETRY_DELAYS_MS, DEFAULT_RETRY_DELAYS_MS);
  assert.equal(defaults.BV_WEBHOOK_DELIVERY_TIMEOUT_MS, 15_000);
  assert.equal(defaults.BV_WEBHOOK_BREAKER_FAILURES, 5);
  assert.equal(defaults.BV_WEBHOOK_BREAKER_HALF_OPEN_MS, undefined);
  assert.equal(defaults.BV_WEBHOOK_SECRET_OVERLAP_MS, DAY_MS);
  assert.equal(defaults.BV_WEBHOOK_ATTEMPTS_RETENTION_DAYS, 7);
  assert.equal(defaults.BV_WEBHOOK_SECRETS_KEY_PREVIOUS, undefined);
  assert.equal(defaults.BV_WEBHOOK_SECRET_UNREADABLE_GRACE_MS, 600_000);
  assert.equal(defaults.BV_WEBHOOK_ENDPOINT_CONCURRENCY, 4);
  // The start warns when this committed key is in use: it must be the default.
  assert.equal(defaults.BV_WEBHOOK_SECRETS_KEY, WEBHOOK_SECRETS_KEY_DEV_DEFAULT);

  const key = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
  const set = loadConfig({
    BV_WEBHOOK_RETRY_DELAYS_MS: "1000, 5000,60000",
    BV_WEBHOOK_DELIVERY_TIMEOUT_MS: "20000",
    BV_WEBHOOK_BREAKER_FAILURES: "3",
    BV_WEBHOOK_BREAKER_HALF_OPEN_MS: "10000",
    BV_WEBHOOK_SECRET_OVERLAP_MS: "3600000",
    BV_WEBHOOK_ATTEMPTS_RETENTION_DAYS: "30",
    BV_WEBHOOK_SECRETS_KEY_PREVIOUS: key,
    BV_WEBHOOK_SECRET_UNREADABLE_GRACE_MS: "0",
    BV_WEBHOOK_ENDPOINT_CONCURRENCY: "2",
  });
  assert.deepEqual(set.BV_WEBHOOK_RETRY_DELAYS_MS, [1_000, 5_000, 60_000]);
  assert.equal(set.BV_WEBHOOK_DELIVERY_TIMEOUT_MS, 20_000);
  assert.equal(set.BV_WEBHOOK_BREAKER_FAILURES, 3);
  assert.equal(set.BV_WEBHOOK_BREAKER_HALF_OPEN_MS, 10_000);
  assert.equal(set.BV_WEBHOOK_SECRET_OVERLAP_MS, 3_600_000);
  assert.equal(set.BV_WEBHOOK_ATTEMPTS_RETENTION_DAYS, 30);
  assert.equal(set.BV_WEBHOOK_SECRETS_KEY_PREVIOUS, key);
  assert.equal(set.BV_WEBHOOK_SECRET_UNREADABLE_GRACE_MS, 0);
  assert.equal(set.BV_WEBHOOK_ENDPOINT_CONCURRENCY, 2);
  for (const bad of ["0", "1001", "1.5"]) {
    assert.throws(() => loadConfig({ BV_WEBHOOK_ENDPOINT_CONCURRENCY: bad }), /BV_WEBHOOK_ENDPOINT_CONCURRENCY/, bad);
  }
  assert.throws(
    () => loadConfig({ BV_WEBHOOK_SECRET_UNREADABLE_GRACE_MS: "-1" }),
    /BV_WEBHOOK_SECRET_UNREADABLE_GRACE_MS/,
  );

  for (const bad of ["0", "1,,2", "1.5", "-1", "abc", Array(21).fill("1").join(",")]) {
    assert.throws(() => loadConfig({ BV_WEBHOOK_RETRY_DELAYS_MS: bad }), /BV_WEBHOOK_RETRY_DELAYS_MS/, bad);
  }
  assert.throws(() => loadConfig({ BV_WEBHOOK_DELIVERY_TIMEOUT_MS: "50" }), /BV_WEBHOOK_DELIVERY_TIMEOUT_MS/);
  assert.throws(() => loadConfig({ BV_WEBHOOK_SECRETS_KEY_PREVIOUS: "short" }), /BV_WEBHOOK_SECRETS_KEY_PREVIOUS/);
});
