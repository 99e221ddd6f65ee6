/**
 * The product cache's fill race, replayed step by step on the memory cache and on real Redis: a reader misses,
 * reads the product, and stalls before its fill; an admin changes the price; the product.updated event is
 * consumed; then the stalled fill arrives. It must not put the old product back for the TTL.
 */
import assert from "node:assert/strict";
import { createMemoryCache, createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { productUpdated } from "../../../shared/contracts/events/ecommerce.ts";
import type { Cache, EventLog, Row, SqlExecutor, SqlValue } from "../../../shared/ports/mod.ts";
import { withScratchRedis } from "../../../shared/testing/scratch_redis.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { closeWorld, createProduct, opts, send, type World, world } from "./_catalog_fixture.ts";
import { readProductThroughCache } from "./product_cache.ts";
// Only names the catalog had before fills were versioned, so this file also runs (and fails) against that code.
import { gqlProductCacheKey, productCacheKey, startProductCacheInvalidation } from "./mod.ts";

/** `sql` whose first query stalls after reading its rows until `release()`: a reader between read and fill. */
function pausedAfterFirstRead(sql: SqlExecutor): { sql: SqlExecutor; read: Promise<void>; release(): void } {
  const read = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  let paused = false;
  return {
    sql: {
      async query<T extends Row = Row>(strings: TemplateStringsArray, ...values: SqlValue[]): Promise<T[]> {
        const rows = await sql.query<T>(strings, ...values);
        if (!paused) {
          paused = true;
          read.resolve();
          await gate.promise;
        }
        return rows;
      },
      exec: (statements) => sql.exec(statements),
    },
    read: read.promise,
    release: () => gate.resolve(),
  };
}

/** Publishes the newest product.updated envelope the catalog appended for `productId`, as the relay would. */
async function relayNewestEvent(w: World, eventLog: EventLog, productId: string): Promise<void> {
  const [{ envelope }] = await w.sql.query<{ envelope: string }>`
    select envelope from outbox where topic = ${productUpdated.eventType} and partition_key = ${productId}
    order by id desc limit 1`;
  await eventLog.publish(productUpdated.eventType, [{ key: productId, value: envelope }]);
}

async function waitFor(what: string, predicate: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs `body` with the catalog's invalidation consumer on `cache`, fed by a fresh in-process event log. */
async function withConsumer(cache: Cache, body: (eventLog: EventLog) => Promise<void>): Promise<void> {
  const eventLog = createMemoryEventLog();
  await eventLog.ensureTopics([{ name: productUpdated.eventType, partitions: 3 }]);
  const sub = await startProductCacheInvalidation({ eventLog, cache, groupId: uniqueName("catalog-race") });
  try {
    await sub.ready;
    await body(eventLog);
  } finally {
    await sub.close();
    await eventLog.close();
  }
}

/** The race, deterministically: the stalled fill lands after the invalidation it raced. */
async function staleFillScenario(cache: Cache): Promise<void> {
  const w = await world();
  await withConsumer(cache, async (eventLog) => {
    const product = await createProduct(w);
    const reader = pausedAfterFirstRead(w.sql);
    const reading = readProductThroughCache(reader.sql, cache, product.id);
    await reader.read;

    const patched = await send(w, "PATCH", `/api/v1/products/${product.id}`, { price: "42.00" });
    assert.equal(patched.status, 200);
    // Both the old and the new consumer delete gql:product:{id}, so its absence shows the event was handled.
    await cache.set(gqlProductCacheKey(product.id), "consumed when gone");
    await relayNewestEvent(w, eventLog, product.id);
    await waitFor("product.updated consumed", async () => (await cache.get(gqlProductCacheKey(product.id))) === null);

    reader.release();
    assert.equal((await reading).price, "129.50", "the stalled reader answers what it read");
    const cachedAfterFill = await cache.get(productCacheKey(product.id));
    const next = await readProductThroughCache(w.sql, cache, product.id);
    assert.equal(next.price, "42.00", "the next reader gets the new price, not the one the stalled reader read");
    assert.equal(cachedAfterFill, null, "the stalled fill was refused: the product changed after it was read");
    assert.equal(
      JSON.parse((await cache.get(productCacheKey(product.id)))!).product.price,
      "42.00",
      "the fresh read fills",
    );
    assert.equal((await readProductThroughCache(w.sql, cache, product.id)).price, "42.00");
  });
}

Deno.test({
  ...opts,
  name: "[memory] a read-through fill that read the product before a consumed product.updated is refused",
  fn: () => staleFillScenario(createMemoryCache()),
});

Deno.test({
  ...opts,
  name: "[redis] a read-through fill that read the product before a consumed product.updated is refused",
  fn: () => withScratchRedis(staleFillScenario),
});

Deno.test({
  ...opts,
  name: "a fill that read the product AFTER the change is stored, and the change's event only deletes it again",
  fn: async () => {
    const w = await world();
    const cache = createMemoryCache();
    await withConsumer(cache, async (eventLog) => {
      const product = await createProduct(w);
      await send(w, "PATCH", `/api/v1/products/${product.id}`, { price: "42.00" });
      // The event is still on its way: a reader fills with the new row (version 2) meanwhile.
      assert.equal((await readProductThroughCache(w.sql, cache, product.id)).price, "42.00");
      assert.equal(JSON.parse((await cache.get(productCacheKey(product.id)))!).product.price, "42.00");
      await relayNewestEvent(w, eventLog, product.id);
      await waitFor("product:{id} deleted", async () => (await cache.get(productCacheKey(product.id))) === null);
      assert.equal((await readProductThroughCache(w.sql, cache, product.id)).price, "42.00");
      assert.notEqual(await cache.get(productCacheKey(product.id)), null, "the version the event named fills again");
    });
  },
});

Deno.test({
  ...opts,
  name: "a product.updated without a version (written before it was carried) still deletes the entries",
  fn: async () => {
    const w = await world();
    const cache = createMemoryCache();
    await withConsumer(cache, async (eventLog) => {
      const product = await createProduct(w);
      await readProductThroughCache(w.sql, cache, product.id);
      await cache.set(gqlProductCacheKey(product.id), "{}");
      const { id: productId, sku, price, currency } = product;
      const envelope = createEnvelope(productUpdated, { productId, sku, price, currency }, {
        producer: "catalog-service",
        traceId: "0".repeat(32),
        correlationId: "old-event",
      });
      await eventLog.publish(productUpdated.eventType, [{ key: productId, value: JSON.stringify(envelope) }]);
      await waitFor("product:{id} deleted", async () => (await cache.get(productCacheKey(product.id))) === null);
      assert.equal(await cache.get(gqlProductCacheKey(product.id)), null);
      await readProductThroughCache(w.sql, cache, product.id);
      assert.notEqual(await cache.get(productCacheKey(product.id)), null, "and the next read fills again");
    });
  },
});

Deno.test({ ...opts, name: "close the catalog test database", fn: closeWorld });
