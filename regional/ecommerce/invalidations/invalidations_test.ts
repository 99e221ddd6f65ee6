/**
 * The invalidation stream end to end in one process, over real HTTP, read by the edge's own client
 * (`followInvalidations`): which events become purges, that the region's cache entries are gone before a
 * purge leaves, and that the route is 503 until its consumer has joined. Memory adapters; about 1 s.
 */
import assert from "node:assert/strict";
import { followInvalidations, type InvalidationFollower } from "../../../edge/invalidation_stream.ts";
import { createMemoryCache, createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { productUpdated, stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import type { Cache, EventLog, Subscription } from "../../../shared/ports/mod.ts";
import { createLifecycle, createServiceApp } from "../../../shared/runtime/mod.ts";
import {
  gqlProductCacheKey,
  gqlProductVersionKey,
  PRODUCT_CACHE_TTL_MS,
  PRODUCT_VERSION_MARK_TTL_MS,
  productCacheKey,
  productVersionKey,
} from "../catalog/mod.ts";
import { flashSaleChannelOf, type Invalidations, INVALIDATIONS_PATH, startInvalidations } from "./mod.ts";
import { readToEnd } from "../../../shared/testing/read_to_end.ts";

const CONTEXT = { producer: "test", traceId: "0".repeat(32), correlationId: "test" };

interface Purge {
  readonly productId: string;
  /** The region's cache entries of the product as they were when the purge arrived. */
  readonly cached: Promise<(string | null)[]>;
}

interface World {
  readonly cache: Cache;
  readonly eventLog: EventLog;
  readonly invalidations: Invalidations;
  readonly url: string;
  readonly purges: Purge[];
  readonly follower: InvalidationFollower;
  close(): Promise<void>;
}

async function startWorld(eventLog: EventLog = createMemoryEventLog()): Promise<World> {
  const cache = createMemoryCache();
  const invalidations = await startInvalidations({ eventLog, cache, region: "east" }, { heartbeatMs: 50 });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, invalidations.routes.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  const purges: Purge[] = [];
  const follower = followInvalidations(url, {
    backoffInitialMs: 20,
    backoffMaxMs: 50,
    idleTimeoutMs: 1_000,
    onPurge: ({ productId }) =>
      purges.push({
        productId,
        cached: Promise.all([cache.get(productCacheKey(productId)), cache.get(gqlProductCacheKey(productId))]),
      }),
  });
  return {
    cache,
    eventLog,
    invalidations,
    url,
    purges,
    follower,
    async close() {
      await follower.stop();
      await invalidations.close();
      await server.shutdown();
      await eventLog.close();
    },
  };
}

const decoder = new TextDecoder();

async function eventually(what: string, check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function publishProductUpdated(eventLog: EventLog, productId: string, version?: number): Promise<void> {
  const payload = { productId, sku: "SKU-1", price: "9.99", currency: "USD", version };
  const envelope = createEnvelope(productUpdated, payload, CONTEXT);
  await eventLog.publish(productUpdated.eventType, [{ key: productId, value: JSON.stringify(envelope) }]);
}

async function publishStockAdjusted(eventLog: EventLog, productId: string): Promise<void> {
  const payload = { productId, sku: "SKU-1", delta: 5, reason: "count", onHand: 5, reserved: 0 };
  const envelope = createEnvelope(stockAdjusted, payload, CONTEXT);
  await eventLog.publish(stockAdjusted.eventType, [{ key: productId, value: JSON.stringify(envelope) }]);
}

Deno.test("product.updated: the region's product and GraphQL entries are deleted before the purge is sent", async () => {
  const world = await startWorld();
  try {
    await eventually("the stream", () => world.follower.connected);
    const id = crypto.randomUUID();
    await world.cache.set(productCacheKey(id), '{"id":"old"}');
    await world.cache.set(gqlProductCacheKey(id), '{"old":true}');
    await publishProductUpdated(world.eventLog, id);
    await eventually("the purge", () => world.purges.length === 1);
    assert.equal(world.purges[0].productId, id);
    assert.deepEqual(await world.purges[0].cached, [null, null], "no old value left for a refetch to read");
  } finally {
    await world.close();
  }
});

Deno.test("product.updated: a fill that read the product before the change cannot land after the purge", async () => {
  const world = await startWorld();
  try {
    await eventually("the stream", () => world.follower.connected);
    const id = crypto.randomUUID();
    // The catalog's fill (product_cache.ts) of a reader that read version 1, then stalled past the change.
    const fill = (version: number) =>
      world.cache.setUnlessStale(productCacheKey(id), `{"version":${version}}`, {
        ttlMs: PRODUCT_CACHE_TTL_MS,
        markKey: productVersionKey(id),
        version,
        markTtlMs: PRODUCT_VERSION_MARK_TTL_MS,
      });
    await publishProductUpdated(world.eventLog, id, 2);
    await eventually("the purge", () => world.purges.length === 1);
    assert.equal(await fill(1), false, "the old product is not put back for the edge's refetch to read");
    assert.equal(await world.cache.get(productCacheKey(id)), null);
    assert.equal(await fill(2), true);
    // A redelivered older change deletes again but never lowers the mark.
    await publishProductUpdated(world.eventLog, id, 1);
    await eventually("the second purge", () => world.purges.length === 2);
    assert.equal(await world.cache.get(productCacheKey(id)), null);
    assert.equal(await world.cache.get(productVersionKey(id)), "2");
  } finally {
    await world.close();
  }
});

Deno.test("stock.adjusted purges the product after dropping its GraphQL aggregate (the product entry stays)", async () => {
  const world = await startWorld();
  try {
    await eventually("the stream", () => world.follower.connected);
    const id = crypto.randomUUID();
    await world.cache.set(productCacheKey(id), '{"id":"same"}');
    await world.cache.set(gqlProductCacheKey(id), '{"available":0}');
    await publishStockAdjusted(world.eventLog, id);
    await eventually("the purge", () => world.purges.length === 1);
    assert.equal(world.purges[0].productId, id);
    assert.deepEqual(await world.purges[0].cached, ['{"id":"same"}', null]);
    // The GraphQL fill (graphql/product_cache.ts) of a reader that read the old stock, guarded by the aggregate's
    // mark as it read it before the change (none: 0).
    const stale = await world.cache.setUnlessStale(gqlProductCacheKey(id), '{"available":0}', {
      ttlMs: 30_000,
      markKey: gqlProductVersionKey(id),
      version: 0,
      markTtlMs: PRODUCT_VERSION_MARK_TTL_MS,
    });
    assert.equal(stale, false, "the old stock is not put back for the edge's refetch to read");
    assert.equal(await world.cache.get(gqlProductCacheKey(id)), null);
  } finally {
    await world.close();
  }
});

Deno.test("flash-sale broadcasts of the region become purges; malformed records and messages are skipped", async () => {
  const world = await startWorld();
  try {
    await eventually("the stream", () => world.follower.connected);
    const channel = flashSaleChannelOf("east");
    await world.cache.publish(channel, "not json");
    await world.cache.publish(channel, JSON.stringify({ seq: 1, event: "other", data: { productId: "x" } }));
    await world.eventLog.publish(productUpdated.eventType, [{ key: "k", value: "{not an envelope" }]);
    const saleProduct = crypto.randomUUID();
    const broadcast = { seq: 2, eventId: crypto.randomUUID(), event: "flash_sale.started", data: {} };
    await world.cache.publish(channel, JSON.stringify({ ...broadcast, data: { productId: saleProduct } }));
    const updated = crypto.randomUUID();
    await publishProductUpdated(world.eventLog, updated);
    await eventually("two purges", () => world.purges.length === 2);
    assert.deepEqual(world.purges.map((p) => p.productId).sort(), [saleProduct, updated].sort());
    await world.cache.publish(flashSaleChannelOf("west"), JSON.stringify({ ...broadcast, data: { productId: "w" } }));
    await publishStockAdjusted(world.eventLog, updated);
    await eventually("the third purge", () => world.purges.length === 3);
    assert.equal(world.purges[2].productId, updated, "another region's channel is not followed");
  } finally {
    await world.close();
  }
});

Deno.test("every process of a region hears every change (one consumer group per process)", async () => {
  const eventLog = createMemoryEventLog();
  const first = await startWorld(eventLog);
  const second = await startWorld(eventLog);
  try {
    await eventually("both streams", () => first.follower.connected && second.follower.connected);
    const ids = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    for (const id of ids) await publishProductUpdated(eventLog, id);
    await eventually("three purges on each", () => first.purges.length === 3 && second.purges.length === 3);
    assert.deepEqual(first.purges.map((p) => p.productId).sort(), [...ids].sort());
    assert.deepEqual(second.purges.map((p) => p.productId).sort(), [...ids].sort());
  } finally {
    await second.follower.stop();
    await second.invalidations.close();
    await first.close();
  }
});

Deno.test("the route answers 503 problem+json until the change feed has joined, then streams", async () => {
  const memory = createMemoryEventLog();
  let open!: () => void;
  const joined = new Promise<void>((resolve) => open = resolve);
  // The real memory log, with its join held back: what a slow Kafka group join looks like to the route.
  const eventLog: EventLog = {
    ...memory,
    subscribe: async (options) => {
      const subscription: Subscription = await memory.subscribe(options);
      return { ready: joined.then(() => subscription.ready), close: () => subscription.close() };
    },
  };
  const cache = createMemoryCache();
  const invalidations = await startInvalidations({ eventLog, cache, region: "east" });
  try {
    const early = await invalidations.routes.request(INVALIDATIONS_PATH);
    assert.equal(early.status, 503);
    assert.equal(early.headers.get("content-type"), "application/problem+json");
    assert.equal((await early.json()).code, "COMMON.UPSTREAM_UNAVAILABLE");
    open();
    await invalidations.ready;
    const abort = new AbortController();
    const live = await invalidations.routes.request(INVALIDATIONS_PATH, { signal: abort.signal });
    assert.equal(live.status, 200);
    assert.equal(live.headers.get("cache-control"), "no-store");
    assert.equal(invalidations.subscribers(), 1);
    await live.body!.cancel();
    assert.equal(invalidations.subscribers(), 0);
  } finally {
    await invalidations.close();
    await memory.close();
  }
});

Deno.test("a stopping server ends the edges' streams with a last comment before its closers run", async () => {
  const eventLog = createMemoryEventLog();
  const invalidations = await startInvalidations({ eventLog, cache: createMemoryCache(), region: "east" });
  await invalidations.ready;
  const lifecycle = createLifecycle({ graceMs: 4_000, handleSignals: false });
  let streamsAtClose = -1;
  lifecycle.onStop("invalidations", () => {
    streamsAtClose = invalidations.subscribers();
    return invalidations.close();
  });
  const app = createServiceApp({ name: "ecommerce-east", checks: {} });
  app.route("/", invalidations.routes);
  const { port } = lifecycle.serve(app, { port: 0, hostname: "127.0.0.1", name: "ecommerce-east" });
  try {
    const response = await fetch(`http://127.0.0.1:${port}${INVALIDATIONS_PATH}`);
    const reader = response.body!.getReader();
    assert.equal(decoder.decode((await reader.read()).value), ": connected\n\n");

    const outcome = await lifecycle.stop("SIGTERM");
    assert.equal(await readToEnd(reader), ": shutting down; reconnect\n\n");
    assert.equal(streamsAtClose, 0, "the stream ended on the shutdown signal, not in the closer");
    assert.equal(outcome.serversDrained, true);
    assert.deepEqual(outcome.closed, ["invalidations"]);
  } finally {
    await invalidations.close();
    await eventLog.close();
  }
});
