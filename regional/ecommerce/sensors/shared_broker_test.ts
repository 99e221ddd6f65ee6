/**
 * Two regions' bridges on ONE broker (infra mode with a single BV_MQTT_URL): through one shared-subscription group
 * each reading reaches exactly one region, so a reading without `seq`/`message-id` (the seed's payload) is applied
 * once, not once per region. On the shared Mosquitto, isolated by a unique group, skus and client ids.
 */
import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createMqttBus } from "../../../shared/adapters/mqtt/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { loadConfig } from "../../../shared/config/config.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { mqttBrokerShared } from "../../wiring/region_ports.ts";
import {
  collectRecords,
  delay,
  discardSession,
  eventually,
  migrateForSensors,
  productWithStock,
  sensorBus,
  stockOf,
} from "./_fixture_for_test.ts";
import { applySensorBatch, startSensorBridge, startSensorDeltaConsumer } from "./mod.ts";

Deno.test("mqttBrokerShared() is true only in infra mode with both regions on the same broker", () => {
  assert.equal(mqttBrokerShared(loadConfig({}), "infra"), true, "BV_MQTT_URL for both by default");
  assert.equal(mqttBrokerShared(loadConfig({}), "embedded"), false, "one aedes per region");
  const own = loadConfig({ BV_WEST_MQTT_URL: "mqtt://127.0.0.1:1893" });
  assert.equal(own.regions.east.mqttUrl, "mqtt://127.0.0.1:1883");
  assert.equal(own.regions.west.mqttUrl, "mqtt://127.0.0.1:1893");
  assert.equal(mqttBrokerShared(own, "infra"), false);
  assert.equal(mqttBrokerShared(loadConfig({ BV_EAST_MQTT_URL: "mqtt://127.0.0.1:1883/" }), "infra"), true);
});

Deno.test({
  name: "two regions' bridges sharing a broker give each reading to exactly one region, and apply it once (Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const url = realInfra.mqttUrl;
    const shareGroup = uniqueName("bv-sensor-bridge");
    const writerSql = await createPgliteSql();
    const closers: (() => Promise<unknown>)[] = [];
    const clientIds: string[] = [];
    try {
      await migrateForSensors(writerSql);
      const product = await productWithStock(writerSql, 100);
      const forwarded: Record<string, number> = {};
      for (const region of ["east", "west"]) {
        const eventLog = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 50 } });
        closers.push(async () => await eventLog.close?.());
        const deltas = await collectRecords(eventLog, sensorDeltaReceived.eventType);
        closers.push(() => deltas.close());
        // West is a replica: its consumer's batches go to the writer, which applies them to the same ledger.
        const consumer = await startSensorDeltaConsumer({
          sql: writerSql,
          eventLog,
          nudgeOutbox: () => {},
          region,
          apply: (records) => applySensorBatch(writerSql, records),
        });
        closers.push(() => consumer.close());
        const clientId = uniqueName(`bv-sensor-bridge-${region}`);
        clientIds.push(clientId);
        const bus = await createMqttBus({ url, clientId, onError: () => {} });
        closers.push(() => bus.close());
        const bridge = await startSensorBridge({ mqtt: bus, shareGroup, eventLog, region, lingerMs: 1 });
        closers.push(() => bridge.close());
        Object.defineProperty(forwarded, region, {
          enumerable: true,
          get: () => deltas.records.filter((r) => r.key === product.sku).length,
        });
      }
      const device = await sensorBus(url, 5);
      closers.push(() => device.close());
      const readings = 10;
      // The seed's payload: no seq, no message-id, so only "one region received it" keeps it from applying twice.
      for (let i = 0; i < readings; i++) {
        await device.publish(`iot/inventory/${product.sku}/delta`, '{"delta": -2, "reason": "SENSOR"}', { qos: 1 });
      }
      const total = () => forwarded.east + forwarded.west;
      await eventually("every reading forwarded", () => total() >= readings, 10_000);
      await eventually(
        "every reading applied",
        async () => (await stockOf(writerSql, product.id)).onHand <= 80,
        10_000,
      );
      await delay(500); // a second copy, if any, has had time to arrive
      assert.equal(
        total(),
        readings,
        `each reading reached one region (east ${forwarded.east}, west ${forwarded.west})`,
      );
      assert.deepEqual(await stockOf(writerSql, product.id), { onHand: 80, adjustments: readings });
    } finally {
      for (const close of closers.reverse()) await close().catch(() => {});
      await Promise.all(clientIds.map((clientId) => discardSession(url, clientId, 5)));
      await writerSql.close();
    }
  },
});
