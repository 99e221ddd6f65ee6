import assert from "node:assert/strict";
import { sensorDeltaReceived } from "./sensors.ts";

const payload = (overrides: Record<string, unknown>) => ({
  messageId: "m-1",
  sku: "SKU-1",
  delta: -2,
  reason: "SENSOR",
  receivedAt: "2026-11-23T12:00:00.000Z",
  ...overrides,
});

Deno.test("sensor deltas refuse control characters in reason and messageId (PostgreSQL stores no NUL)", () => {
  assert.ok(sensorDeltaReceived.payload.safeParse(payload({})).success);
  for (const bad of [{ reason: "a\u0000b" }, { reason: "line\nbreak" }, { messageId: "m\u0000" }]) {
    const parsed = sensorDeltaReceived.payload.safeParse(payload(bad));
    assert.equal(parsed.success, false, JSON.stringify(bad));
  }
});
