import assert from "node:assert/strict";
import { startEmbeddedMqttBroker } from "../../../shared/adapters/aedes/mod.ts";
import { createMemoryCache, createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createMqttBus } from "../../../shared/adapters/mqtt/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { DLQ_HEADERS, dlqTopicOf } from "../../../shared/ports/mod.ts";
import { inventoryCacheKey, startInventoryCacheProjection } from "../inventory/mod.ts";
import { startOutboxRelay } from "../outbox/mod.ts";
import {
  collectRecords,
  eventually,
  migrateForSensors,
  productWithStock,
  runSensor,
  sensorBus,
  stockOf,
} from "./_fixture_for_test.ts";
import { startSensorBridge, startSensorDeltaConsumer } from "./mod.ts";

Deno.test({
  name: "embedded (aedes + in-process log + PGlite): sensor deltas are applied once and bad ones dead-lettered",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const broker = await startEmbeddedMqttBroker({ port: 0 });
    const eventLog = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 50 } });
    const cache = createMemoryCache();
    const sql = await createPgliteSql();
    const closers: (() => Promise<unknown>)[] = [];
    try {
      await migrateForSensors(sql);
      const relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 50 });
      closers.push(() => relay.stop());
      const projection = await startInventoryCacheProjection({ eventLog, cache, groupId: "test.inventory-cache" });
      closers.push(() => projection.close());
      const consumer = await startSensorDeltaConsumer({
        sql,
        eventLog,
        nudgeOutbox: () => relay.nudge(),
        region: "test",
      });
      closers.push(() => consumer.close());
      const dlq = await collectRecords(eventLog, dlqTopicOf(sensorDeltaReceived.eventType));
      closers.push(() => dlq.close());
      const bridgeBus = await createMqttBus({
        url: broker.url,
        clientId: "bv-sensor-bridge-test",
        protocolVersion: broker.protocolVersion,
        onError: () => {},
      });
      closers.push(() => bridgeBus.close());
      const bridge = await startSensorBridge({ mqtt: bridgeBus, eventLog, region: "test" });
      closers.push(() => bridge.close());
      const sensor = await sensorBus(broker.url, broker.protocolVersion);
      closers.push(() => sensor.close());

      const product = await productWithStock(sql, 100);
      await runSensor(sensor, { sku: product.sku, deviceId: "shelf-1", deltas: [10, -2, -3, 1] });
      // A device that lost the PUBACK re-sends a reading: the same seq must not count twice.
      const repeat = JSON.stringify({ delta: -2, reason: "SENSOR", seq: 2, deviceId: "shelf-1" });
      await sensor.publish(`iot/inventory/${product.sku}/delta`, repeat, { qos: 1 });
      await sensor.publish(`iot/inventory/${product.sku}/delta`, '{"delta": "lots"}', { qos: 1 });
      await sensor.publish(
        "iot/inventory/NO-SUCH-SKU-1/delta",
        '{"delta": 1, "reason": "SENSOR", "seq": 1, "deviceId": "d"}',
        {
          qos: 1,
        },
      );
      await sensor.publish(
        `iot/inventory/${product.sku}/delta`,
        '{"delta": -500, "reason": "SENSOR", "seq": 99, "deviceId": "d"}',
        {
          qos: 1,
        },
      );

      await eventually("three dead letters", () => dlq.records.length >= 3);
      await eventually("the cache snapshot at 106", async () => {
        const snapshot = await cache.get(inventoryCacheKey(product.id));
        return snapshot !== null && JSON.parse(snapshot).onHand === 106;
      });
      assert.deepEqual(await stockOf(sql, product.id), { onHand: 106, adjustments: 4 });
      const reasons = dlq.records.map((r) => r.headers[DLQ_HEADERS.error]).sort();
      assert.match(reasons.find((r) => r.includes("delta"))!, /Payload is not a sensor delta/);
      assert.ok(reasons.some((r) => /No product has sku "NO-SUCH-SKU-1"/.test(r)), reasons.join("\n"));
      assert.ok(reasons.some((r) => /Cannot adjust .* by -500/.test(r)), reasons.join("\n"));
    } finally {
      for (const close of closers.reverse()) await close().catch(() => {});
      await broker.close();
      await eventLog.close();
      await sql.close();
      await cache.close();
    }
  },
});
