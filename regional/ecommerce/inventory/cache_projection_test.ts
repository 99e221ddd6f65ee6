/**
 * The `inventory:{productId}` projection end to end: a state change commits with its outbox row, the
 * relay publishes it, the projection sets the snapshot. Once on the embedded adapters, once on real
 * PostgreSQL, Kafka and Redis.
 */
import assert from "node:assert/strict";
import { createKafkaEventLog } from "../../../shared/adapters/kafka/mod.ts";
import { createMemoryCache, createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { createRedisCache } from "../../../shared/adapters/redis/mod.ts";
import { stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import type { Cache, EventLog, Sql } from "../../../shared/ports/mod.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { startOutboxRelay } from "../outbox/mod.ts";
import { eventually, insertProduct, migrateForInventory } from "./_fixtures_for_test.ts";
import {
  applyStockAdjustment,
  commitReservation,
  inventoryCacheKey,
  type InventorySnapshot,
  reserveStock,
  startInventoryCacheProjection,
} from "./mod.ts";

async function projectionScenario(sql: Sql, eventLog: EventLog, cache: Cache, from: "earliest" | "latest") {
  await migrateForInventory(sql);
  await eventLog.ensureTopics([{ name: stockAdjusted.eventType, partitions: 3 }]);
  const relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 50 });
  const projection = await startInventoryCacheProjection({ eventLog, cache, groupId: uniqueName("inv-cache"), from });
  const snapshotOf = async (productId: string, wanted: (s: InventorySnapshot) => boolean) =>
    await eventually(`the snapshot of ${productId}`, async () => {
      const text = await cache.get(inventoryCacheKey(productId));
      const snapshot = text === null ? undefined : JSON.parse(text) as InventorySnapshot;
      return snapshot && wanted(snapshot) ? snapshot : undefined;
    }, 20_000);
  try {
    await projection.ready;
    const product = await insertProduct(sql);
    assert.equal(await cache.get(inventoryCacheKey(product.id)), null);
    await sql.transaction((tx) =>
      applyStockAdjustment(tx, { productId: product.id, delta: 9, reason: "count", source: "test" })
    );
    relay.nudge();
    const counted = await snapshotOf(product.id, (s) => s.onHand === 9);
    assert.equal(counted.sku, product.sku);
    assert.deepEqual([counted.reserved, counted.available], [0, 9]);

    // Reservations and fulfilment move the snapshot too (their events carry delta 0 and -qty).
    const reservationId = crypto.randomUUID();
    await reserveStock(sql, { reservationId, items: [{ productId: product.id, qty: 4 }], ttlSec: 60 });
    relay.nudge();
    const reserved = await snapshotOf(product.id, (s) => s.reserved === 4);
    assert.deepEqual([reserved.onHand, reserved.available], [9, 5]);
    await commitReservation(sql, reservationId);
    relay.nudge();
    const shipped = await snapshotOf(product.id, (s) => s.onHand === 5);
    assert.deepEqual([shipped.reserved, shipped.available], [0, 5]);
  } finally {
    await projection.close();
    await relay.stop();
  }
}

Deno.test({
  name: "[pglite+memory] stock events set the inventory snapshot in the cache",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    const eventLog = createMemoryEventLog();
    const cache = createMemoryCache();
    try {
      await projectionScenario(sql, eventLog, cache, "earliest");
    } finally {
      await eventLog.close();
      await cache.close();
      await sql.close();
    }
  },
});

Deno.test({
  name: "[postgres+kafka+redis] stock events set the inventory snapshot in the cache",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url });
    const eventLog = createKafkaEventLog({ brokers: realInfra.kafkaBrokers, clientId: uniqueName("inventory") });
    const redis = createRedisCache({ url: realInfra.redisUrl, keyPrefix: `${uniqueName("bvtest")}:` });
    // The topic is shared with other runs: remember every key the projection sets, to delete them after.
    const written = new Set<string>();
    const cache: Cache = {
      ...redis,
      get: redis.get.bind(redis),
      del: redis.del.bind(redis),
      set: (key, value, options) => {
        written.add(key);
        return redis.set(key, value, options);
      },
    };
    try {
      // "latest": this group must not replay the shared topic's history from other runs.
      await projectionScenario(sql, eventLog, cache, "latest");
    } finally {
      if (written.size > 0) await redis.del(...written);
      await eventLog.close();
      await redis.close();
      await sql.close();
      await db.drop();
    }
  },
});
