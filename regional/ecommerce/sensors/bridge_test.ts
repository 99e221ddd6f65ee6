import assert from "node:assert/strict";
import { createEnvelope, parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import type { EventLog } from "../../../shared/ports/mod.ts";
import { publishBatch, SENSOR_BRIDGE_PRODUCER, sensorEnvelopeOf } from "./bridge.ts";
import { eventIdOf, readSensorMessage } from "./sensor_delta.ts";

Deno.test("the bridge's envelope is the one createEnvelope() builds, field for field", async () => {
  const read = await readSensorMessage({
    topic: "iot/inventory/SKU-7/delta",
    payload: new TextEncoder().encode('{"delta": -3, "reason": "  shelf scan ", "seq": 12, "deviceId": "bin-4"}'),
    userProperties: {},
  });
  assert.ok(read.ok);
  const receivedAt = "2026-11-23T02:30:00.123Z";
  const trace = { traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "corr-1" };
  const eventId = await eventIdOf(read.value.messageId);
  const fast = sensorEnvelopeOf(read.value, receivedAt, trace, eventId);
  const built = createEnvelope(sensorDeltaReceived, { ...read.value, receivedAt }, {
    producer: SENSOR_BRIDGE_PRODUCER,
    traceId: trace.traceId,
    correlationId: trace.correlationId,
    eventId,
    now: () => new Date(receivedAt),
  });
  assert.equal(JSON.stringify(fast), JSON.stringify(built), "same fields, same order, same values");
  const parsed = parseEnvelope(JSON.stringify(fast));
  assert.ok(parsed.ok, "the consumer accepts it");
});

Deno.test("a batch whose dead-letter topic cannot be written fails only its dead letters, not the forwarded readings", async () => {
  const inner = createMemoryEventLog({ warn: () => {} });
  const published: string[] = [];
  const eventLog: EventLog = {
    ...inner,
    publish: (topic, records) => {
      if (topic.endsWith(".dlq")) return Promise.reject(new Error("dlq topic down"));
      published.push(...records.map((r) => r.value));
      return inner.publish(topic, records);
    },
  };
  try {
    const record = (value: string) => ({ key: "k", value, headers: {} });
    const outcomes = await publishBatch(eventLog, [
      { topic: "iot.inventory.sensor.delta_received.v1", record: record("good-1") },
      { topic: "iot.inventory.sensor.delta_received.v1.dlq", record: record("bad") },
      { topic: "iot.inventory.sensor.delta_received.v1", record: record("good-2") },
    ], 50);
    assert.deepEqual(published, ["good-1", "good-2"]);
    assert.equal(outcomes[0], undefined);
    assert.match(String(outcomes[1]), /dlq topic down/);
    assert.equal(outcomes[2], undefined);
  } finally {
    await inner.close();
  }
});
