/**
 * Two regions' bridges on ONE broker (infra mode with a single BV_MQTT_URL): through one shared-subscription group
 * each reading reaches exactly one region, so a reading without `seq`/`message-id` (the seed's payload) is applied
 * once, not once per region; only linked regions share (unlinked ones each apply every reading to their own stock);
 * one broker written two ways is one; and a bridge whose session moves between the plain filter and the group loses
 * no queued reading and forwards each new one once. On the shared Mosquitto, isolated by a unique group, skus and
 * client ids.
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
import { applySensorBatch, sensorSharingOf, startSensorBridge, startSensorDeltaConsumer } from "./mod.ts";

Deno.test("mqttBrokerShared() is true only in infra mode with both regions on the same broker", () => {
  assert.equal(mqttBrokerShared(loadConfig({}), "infra"), true, "BV_MQTT_URL for both by default");
  assert.equal(mqttBrokerShared(loadConfig({}), "embedded"), false, "one aedes per region");
  const own = loadConfig({ BV_WEST_MQTT_URL: "mqtt://127.0.0.1:1893" });
  assert.equal(own.regions.east.mqttUrl, "mqtt://127.0.0.1:1883");
  assert.equal(own.regions.west.mqttUrl, "mqtt://127.0.0.1:1893");
  assert.equal(mqttBrokerShared(own, "infra"), false);
  assert.equal(mqttBrokerShared(loadConfig({ BV_EAST_MQTT_URL: "mqtt://127.0.0.1:1883/" }), "infra"), true);
});

Deno.test("mqttBrokerShared() takes one broker written two ways as one: default port, host case, loopback names", () => {
  const shared = (east: string, west: string) =>
    mqttBrokerShared(loadConfig({ BV_EAST_MQTT_URL: east, BV_WEST_MQTT_URL: west }), "infra");
  assert.equal(shared("mqtt://127.0.0.1", "mqtt://127.0.0.1:1883"), true, "1883 is mqtt:'s default port");
  assert.equal(shared("mqtt://localhost:1883", "mqtt://127.0.0.1:1883"), true);
  assert.equal(shared("mqtt://[::1]", "mqtt://LOCALHOST:1883"), true);
  assert.equal(shared("mqtt://Broker.Example:1883", "mqtt://broker.example"), true);
  assert.equal(shared("mqtts://broker.example", "mqtts://broker.example:8883"), true);
  assert.equal(shared("mqtt://user:secret@broker.example/x", "mqtt://broker.example"), true);
  assert.equal(shared("ws://broker.example", "ws://broker.example:80"), true);
  assert.equal(shared("mqtts://broker.example:1883", "mqtt://broker.example:1883"), false, "TLS is another listener");
  assert.equal(shared("mqtt://broker.example", "mqtt://broker.example:1884"), false);
  assert.equal(shared("mqtt://127.0.0.1", "mqtt://10.0.0.1"), false);
});

Deno.test("sensorSharingOf() shares only between linked regions on one broker, else subscribes plainly", () => {
  const group = "bv-sensor-bridge-east-west";
  // Linked: each reading goes to one region, whose writer (or its forward to the writer) applies it to the one stock.
  assert.deepEqual(sensorSharingOf({ brokerShared: true, linked: true, group }), { shareGroup: group });
  // Unlinked (both regions on one PostgreSQL server: no replication): each region's stock needs every reading,
  // and a session that shared while linked takes the group back.
  assert.deepEqual(sensorSharingOf({ brokerShared: true, linked: false, group }), { formerShareGroup: group });
  // Each region's own broker: nothing to share, whether linked or not.
  assert.deepEqual(sensorSharingOf({ brokerShared: false, linked: true, group }), {});
  assert.deepEqual(sensorSharingOf({ brokerShared: false, linked: false, group }), {});
});

/** Starts a bridge on a persistent session `clientId`, forwarding into `eventLog`; returns its closer. */
async function bridgeOn(
  clientId: string,
  eventLog: ReturnType<typeof createMemoryEventLog>,
  sharing: { shareGroup?: string; formerShareGroup?: string },
): Promise<() => Promise<void>> {
  // A hold long enough for the session's queued readings, which arrive right after CONNACK, to wait for subscribe().
  const bus = await createMqttBus({ url: realInfra.mqttUrl, clientId, unmatchedHoldMs: 2_000, onError: () => {} });
  try {
    const bridge = await startSensorBridge({ mqtt: bus, ...sharing, eventLog, region: "east", lingerMs: 1 });
    return async () => {
      await bridge.close();
      await bus.close();
    };
  } catch (error) {
    await bus.close();
    throw error;
  }
}

for (
  const [from, to] of [
    ["plain", "shared"],
    ["shared", "plain"],
  ] as const
) {
  Deno.test({
    name: `a bridge restarted from a ${from} to a ${to} subscription forwards the readings queued meanwhile, then ` +
      "each new reading once (Mosquitto)",
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const url = realInfra.mqttUrl;
      const group = uniqueName("bv-sensor-bridge");
      const sharingOf = (kind: "plain" | "shared") =>
        kind === "shared" ? { shareGroup: group } : { formerShareGroup: group };
      const clientId = uniqueName("bv-sensor-bridge-switch");
      const sku = uniqueName("SW").toUpperCase();
      const eventLog = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 50 } });
      const deltas = await collectRecords(eventLog, sensorDeltaReceived.eventType);
      const device = await sensorBus(url, 5);
      const forwarded = () => deltas.records.filter((r) => r.key === sku).length;
      // The seed's payload: no seq, no message-id, so a second copy would be forwarded (and applied) again.
      const read = (n: number) =>
        device.publish(`iot/inventory/${sku}/delta`, `{"delta": -${n}, "reason": "SENSOR"}`, { qos: 1 });
      try {
        // The earlier deploy (or the regions before they were linked or unlinked), then down.
        await (await bridgeOn(clientId, eventLog, sharingOf(from)))();
        // Acknowledged to the device while no bridge runs: the session's queued copies are the only ones.
        for (let i = 1; i <= 5; i++) await read(i);
        const close = await bridgeOn(clientId, eventLog, sharingOf(to));
        try {
          await eventually("every queued reading forwarded", () => forwarded() >= 5, 10_000);
          for (let i = 6; i <= 10; i++) await read(i);
          await eventually("every new reading forwarded", () => forwarded() >= 10, 10_000);
          await delay(1_000); // a second copy (the old subscription's), if any, has had time to arrive
          assert.equal(forwarded(), 10, "each reading forwarded once, none lost");
        } finally {
          await close();
        }
      } finally {
        await device.close();
        await deltas.close();
        await eventLog.close?.();
        await discardSession(url, clientId, 5);
      }
    },
  });
}

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
