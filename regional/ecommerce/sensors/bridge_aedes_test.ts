/**
 * The bridge on the embedded broker (aedes, MQTT 3.1.1) and the in-process event log: a retained reading is
 * dead-lettered rather than applied at every start, readings queued in the session while the bridge was down
 * survive a Kafka slow to make the topics, and a rejected message's log line is bounded.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { startEmbeddedMqttBroker } from "../../../shared/adapters/aedes/mod.ts";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createMqttBus } from "../../../shared/adapters/mqtt/mod.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { DLQ_HEADERS, dlqTopicOf, type EventLog } from "../../../shared/ports/mod.ts";
import { collectRecords, delay, eventually } from "./_fixture_for_test.ts";
import { startSensorBridge } from "./mod.ts";

const DELTAS = sensorDeltaReceived.eventType;

Deno.test({
  name: "bridge dead-letters a retained reading at each start instead of forwarding it again (aedes, MQTT 3.1.1)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const broker = await startEmbeddedMqttBroker({ port: 0 });
    const eventLog = createMemoryEventLog();
    try {
      const deltas = await collectRecords(eventLog, DELTAS);
      const dlq = await collectRecords(eventLog, dlqTopicOf(DELTAS));
      // Firmware that publishes "the last value" with the retain flag: the broker keeps it for every new subscriber.
      const device = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: "device-1", clean: true });
      await device.publishAsync("iot/inventory/SKU-R1/delta", '{"delta": -2, "reason": "SENSOR"}', {
        qos: 1,
        retain: true,
      });
      await device.endAsync();
      for (const start of [1, 2]) {
        const bus = await createMqttBus({
          url: broker.url,
          clientId: "bv-sensor-bridge-test",
          protocolVersion: broker.protocolVersion,
          onError: () => {},
        });
        const bridge = await startSensorBridge({ mqtt: bus, eventLog, region: "test", lingerMs: 1 });
        await eventually(`the dead letter of start ${start}`, () => dlq.records.length === start, 5_000);
        await bridge.close();
        await bus.close();
      }
      assert.equal(deltas.records.length, 0, "never forwarded as a delta");
      for (const record of dlq.records) {
        assert.match(record.headers[DLQ_HEADERS.error], /^Retained message: .*without the retain flag/);
        assert.equal(record.key, "SKU-R1");
        assert.equal(record.value, '{"delta": -2, "reason": "SENSOR"}');
      }
      await Promise.all([deltas.close(), dlq.close()]);
    } finally {
      await eventLog.close?.();
      await broker.close();
    }
  },
});

Deno.test({
  name: "bridge forwards the readings queued in its session even when Kafka makes the topics after the bus's hold",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const broker = await startEmbeddedMqttBroker({ port: 0 });
    const inner = createMemoryEventLog();
    let topicsDelayMs = 0;
    const eventLog: EventLog = {
      ...inner,
      ensureTopics: async (topics) => {
        await delay(topicsDelayMs);
        return await inner.ensureTopics(topics);
      },
    };
    const holdMs = 300;
    const connect = () =>
      createMqttBus({
        url: broker.url,
        clientId: "bv-sensor-bridge-test",
        protocolVersion: broker.protocolVersion,
        unmatchedHoldMs: holdMs,
        reconnectPeriodMs: 100,
        redeliveryDelayMsMin: 100,
        onError: () => {},
      });
    try {
      const deltas = await collectRecords(inner, DELTAS);
      // The first start makes the persistent session and its subscription.
      let bus = await connect();
      let bridge = await startSensorBridge({ mqtt: bus, eventLog, region: "test", lingerMs: 1 });
      await bridge.close();
      await bus.close();
      // While the bridge is down the broker acknowledges three readings to the device and queues them.
      const device = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: "device-1", clean: true });
      for (let seq = 1; seq <= 3; seq++) {
        const payload = JSON.stringify({ delta: -1, reason: "SENSOR", seq, deviceId: "d" });
        await device.publishAsync("iot/inventory/SKU-Q1/delta", payload, { qos: 1 });
      }
      await device.endAsync();
      // Restart with Kafka slow to answer: the topics come well after the bus stopped holding unmatched messages.
      topicsDelayMs = 5 * holdMs;
      bus = await connect();
      bridge = await startSensorBridge({ mqtt: bus, eventLog, region: "test", lingerMs: 1 });
      await eventually("the three queued readings on Kafka", () => deltas.records.length >= 3, 10_000);
      await bridge.close();
      await bus.close();
      const seqs = deltas.records.map((r) => JSON.parse(r.value).payload.messageId);
      assert.equal(new Set(seqs).size, 3, "each of the three readings");
      await deltas.close();
    } finally {
      await inner.close?.();
      await broker.close();
    }
  },
});

Deno.test({
  name: "bridge logs a rejected message with its topic and reason cut to the dead letter's bounds",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const broker = await startEmbeddedMqttBroker({ port: 0 });
    const eventLog = createMemoryEventLog();
    const lines: string[] = [];
    const print = console.error;
    try {
      const dlq = await collectRecords(eventLog, dlqTopicOf(DELTAS));
      const bus = await createMqttBus({
        url: broker.url,
        clientId: "bv-sensor-bridge-test",
        protocolVersion: broker.protocolVersion,
        onError: () => {},
      });
      const bridge = await startSensorBridge({ mqtt: bus, eventLog, region: "test", lingerMs: 1 });
      console.error = (line: string) => lines.push(line);
      // A 20,000-character sku: the topic is that long, and the reason quotes it.
      const device = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: "device-1", clean: true });
      await device.publishAsync(`iot/inventory/${"S".repeat(20_000)}/delta`, '{"delta": -1, "reason": "x"}', {
        qos: 1,
      });
      await device.endAsync();
      await eventually("the dead letter", () => dlq.records.length === 1, 5_000);
      console.error = print;
      await bridge.close();
      await bus.close();
      await dlq.close();
      const logged = lines.map((line) => JSON.parse(line)).find((entry) => entry.msg === "sensor message rejected");
      assert.ok(logged, "a log line for the rejected message");
      assert.ok(logged.mqttTopic.length <= 256, `topic of ${logged.mqttTopic.length} characters logged`);
      assert.ok(logged.reason.length <= 1_000, `reason of ${logged.reason.length} characters logged`);
      assert.ok(lines.every((line) => line.length < 4_000), "no log line carries the whole topic");
    } finally {
      console.error = print;
      await eventLog.close?.();
      await broker.close();
    }
  },
});
