import assert from "node:assert/strict";
import { createEnvelope, parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { SENSOR_BRIDGE_PRODUCER, sensorEnvelopeOf } from "./bridge.ts";
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
