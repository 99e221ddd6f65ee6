/**
 * The product cache (product_cache.ts): reads go through it, and only a consumed product.updated event
 * invalidates it, never the write path.
 */
import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { productUpdated } from "../../../shared/contracts/events/ecommerce.ts";
import { metrics } from "../../../shared/observability/mod.ts";
import { startOutboxRelay } from "../outbox/mod.ts";
import { closeWorld, createProduct, opts, send, world } from "./_catalog_fixture.ts";
import { productCacheKey, startProductCacheInvalidation } from "./mod.ts";

async function cacheCount(result: "hit" | "miss"): Promise<number> {
  const metric = await metrics.registry.getSingleMetric("bv_product_cache_requests_total")!.get();
  return metric.values.find((v) => v.labels.result === result)?.value ?? 0;
}

Deno.test({
  ...opts,
  name: "GET /products/{id} reads through the cache: a miss fills product:{id}, the next read is a hit",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    const [hits, misses] = [await cacheCount("hit"), await cacheCount("miss")];
    await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null);
    assert.equal(await cacheCount("miss"), misses + 1);
    // The entry holds the version with the product, so a hit answers the same ETag as the read that filled it.
    assert.deepEqual(JSON.parse((await w.cache.get(productCacheKey(product.id)))!), { product, version: 1 });
    assert.ok((await w.cache.ttlMs(productCacheKey(product.id))) > 290_000);
    // Changed behind the cache's back: a hit still shows the cached copy, proving SQL was not read.
    await w.sql.query`update products set name = 'Changed' where id = ${product.id}::uuid`;
    const second = await (await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null)).json();
    assert.equal(second.name, product.name);
    assert.equal(await cacheCount("hit"), hits + 1);
  },
});

Deno.test({
  ...opts,
  name: "the product cache is invalidated only when the product.updated event is consumed",
  fn: async () => {
    const w = await world();
    const eventLog = createMemoryEventLog();
    await eventLog.ensureTopics([{ name: productUpdated.eventType, partitions: 3 }]);
    const product = await createProduct(w);
    await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null);
    const key = productCacheKey(product.id);
    assert.notEqual(await w.cache.get(key), null);
    await w.cache.set(`gql:product:${product.id}`, "{}");

    const put = await send(w, "PATCH", `/api/v1/products/${product.id}`, { price: "42.00" });
    assert.equal(put.status, 200);
    assert.notEqual(await w.cache.get(key), null, "the write path does not touch the cache");
    const stale = await (await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null)).json();
    assert.equal(stale.price, "129.50");

    const sub = await startProductCacheInvalidation({ eventLog, cache: w.cache, groupId: "catalog-cache-test" });
    await sub.ready;
    const relay = startOutboxRelay({ sql: w.sql, eventLog, pollIntervalMs: 20 });
    try {
      await waitFor("product:{id} deleted", async () => (await w.cache.get(key)) === null);
      assert.equal(await w.cache.get(`gql:product:${product.id}`), null);
      const fresh = await (await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null)).json();
      assert.equal(fresh.price, "42.00");
    } finally {
      await relay.stop();
      await sub.close();
      await eventLog.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "close the catalog test database",
  fn: closeWorld,
});

async function waitFor(what: string, predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
