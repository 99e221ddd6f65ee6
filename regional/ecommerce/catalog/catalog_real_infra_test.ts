import assert from "node:assert/strict";
import { createKafkaEventLog } from "../../../shared/adapters/kafka/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { createRedisCache } from "../../../shared/adapters/redis/mod.ts";
import { productUpdated } from "../../../shared/contracts/events/ecommerce.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { TEST_CONSUMER_TIMINGS } from "../../../shared/testing/kafka_test_timings.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { outboxMigrations, startOutboxRelay } from "../outbox/mod.ts";
import { catalogMigrations, createCatalogRoutes, productCacheKey, startProductCacheInvalidation } from "./mod.ts";

async function waitFor(what: string, predicate: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name: "[postgres+redis+kafka] a price change reaches the Redis product cache only through the consumed event",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url });
    const cache = createRedisCache({ url: realInfra.redisUrl, keyPrefix: uniqueName("bvtest") + ":" });
    const eventLog = createKafkaEventLog({
      brokers: realInfra.kafkaBrokers,
      clientId: uniqueName("catalog-test"),
      logLevel: "error",
      consumer: TEST_CONSUMER_TIMINGS,
    });
    let relay: { nudge(): void; stop(): Promise<void> } | undefined;
    let subscription: { close(): Promise<void> } | undefined;
    try {
      await migrate(sql, [...outboxMigrations, ...catalogMigrations]);
      relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 50 });
      await eventLog.ensureTopics([{ name: productUpdated.eventType, partitions: 3 }]);
      const sub = await startProductCacheInvalidation({
        eventLog,
        cache,
        groupId: uniqueName("catalog-cache"),
        // The topic is shared with other runs on this broker: only this run's events matter here.
        from: "latest",
      });
      subscription = sub;
      await sub.ready;
      const tokens = await createTestTokens();
      const admin = await tokens.token("admin", ["ADMIN"]);
      const app = createCatalogRoutes({ sql, cache, verifier: tokens.verifier, nudgeOutbox: relay.nudge });
      const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
      const created = await app.request("/api/v1/products", {
        method: "POST",
        headers,
        body: JSON.stringify({
          sku: uniqueName("SKU"),
          name: "Kettle",
          category: "kitchen",
          price: "35.00",
          currency: "EUR",
        }),
      });
      assert.equal(created.status, 201);
      const product = await created.json();
      // The creation event may land after the first read; wait for it so it cannot be mistaken below.
      await waitFor(
        "the creation event published",
        async () => (await sql.query`select 1 from outbox where published_at is null`).length === 0,
      );

      assert.equal((await (await app.request(`/api/v1/products/${product.id}`)).json()).price, "35.00");
      await waitFor("the product cached", async () => (await cache.get(productCacheKey(product.id))) !== null);

      const patched = await app.request(`/api/v1/products/${product.id}`, {
        method: "PATCH",
        headers,
        body: JSON.stringify({ price: "29.99" }),
      });
      assert.equal(patched.status, 200);
      await waitFor(
        "product:{id} invalidated by the event",
        async () => (await cache.get(productCacheKey(product.id))) === null,
      );
      const fresh = await (await app.request(`/api/v1/products/${product.id}`)).json();
      assert.equal(fresh.price, "29.99");
      const history = await (await app.request(`/api/v1/products/${product.id}/price-history`)).json();
      assert.deepEqual(history.items.map((r: { price: string }) => r.price), ["29.99", "35.00"]);
    } finally {
      await relay?.stop();
      await subscription?.close();
      await eventLog.close();
      await cache.close();
      await sql.close();
      await db.drop();
    }
  },
});
