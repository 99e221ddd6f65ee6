/**
 * followProductChanges() with a batch-capable event log (as Kafka is): what one batch of changes does to the
 * region's cache, deterministically, with the handler called by hand.
 */
import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { productUpdated, stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import type { BatchSubscribeOptions, EventLog, IncomingRecord } from "../../../shared/ports/mod.ts";
import { gqlProductCacheKey, gqlProductVersionKey, productCacheKey, productVersionKey } from "../catalog/mod.ts";
import { followProductChanges } from "./product_changes.ts";

const CONTEXT = { producer: "test", traceId: "0".repeat(32), correlationId: "test" };

/** An event log that only takes batch subscriptions and hands their handler to the test. */
function capturingLog(): { eventLog: EventLog; handler: () => BatchSubscribeOptions["handler"] } {
  let handler: BatchSubscribeOptions["handler"] | undefined;
  const eventLog: EventLog = {
    ensureTopics: () => Promise.resolve(),
    publish: () => Promise.resolve(),
    subscribe: () => Promise.reject(new Error("This log takes batch subscriptions only")),
    subscribeBatches: (options) => {
      handler = options.handler;
      return Promise.resolve({ ready: Promise.resolve(), close: () => Promise.resolve() });
    },
    ping: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return { eventLog, handler: () => handler! };
}

let offset = 0;
/** A record as the log delivers it, carrying `envelope`. */
function recordOf(envelope: { eventType: string; partitionKey: string }): IncomingRecord {
  const at = offset++;
  const { eventType: topic, partitionKey: key } = envelope;
  return {
    topic,
    partition: 0,
    offset: String(at),
    key,
    value: JSON.stringify(envelope),
    headers: {},
    timestampMs: at,
  };
}

const updated = (productId: string, version?: number) =>
  recordOf(
    createEnvelope(productUpdated, { productId, sku: "SKU-1", price: "9.99", currency: "USD", version }, CONTEXT),
  );
const stock = (productId: string) =>
  recordOf(
    createEnvelope(
      stockAdjusted,
      { productId, sku: "SKU-1", delta: 1, reason: "count", onHand: 1, reserved: 0 },
      CONTEXT,
    ),
  );

Deno.test("one batch raises each updated product's mark to its highest version and drops the right entries", async () => {
  const cache = createMemoryCache();
  const log = capturingLog();
  const reported: string[] = [];
  const changes = await followProductChanges(
    { eventLog: log.eventLog, cache, region: "east" },
    (id) => reported.push(id),
  );
  try {
    const [a, b, c] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    for (const id of [a, b, c]) {
      await cache.set(productCacheKey(id), "cached");
      await cache.set(gqlProductCacheKey(id), "aggregate");
    }
    await log.handler()([updated(a, 3), stock(b), updated(a, 2), updated(c), stock(b), stock(a)]);
    assert.equal(await cache.get(productVersionKey(a)), "3", "the highest version of the batch, whatever the order");
    assert.equal(await cache.get(productVersionKey(c)), null, "an event without a version only deletes");
    assert.deepEqual(
      await Promise.all([a, b, c].map((id) => cache.get(gqlProductVersionKey(id)))),
      ["1", "1", "1"],
      "each product's aggregate mark rises once per batch, for stock and product changes alike",
    );
    assert.deepEqual(
      await Promise.all(
        [a, b, c].map(async (id) => [await cache.get(productCacheKey(id)), await cache.get(gqlProductCacheKey(id))]),
      ),
      [[null, null], ["cached", null], [null, null]],
      "stock.adjusted drops only the GraphQL aggregate",
    );
    assert.deepEqual(reported, [a, b, c]);
    const stalledFill = (id: string) =>
      cache.setUnlessStale(gqlProductCacheKey(id), "read before", {
        ttlMs: 30_000,
        markKey: gqlProductVersionKey(id),
        version: 0,
        markTtlMs: 600_000,
      });
    assert.deepEqual(
      await Promise.all([a, b, c].map(stalledFill)),
      [false, false, false],
      "a GraphQL fill that read before the batch (mark 0) is refused after it",
    );
  } finally {
    await changes.close();
    await cache.close();
  }
});
