import assert from "node:assert/strict";
import { createEnvelope, parseEnvelope, registeredEventTypes } from "./envelope.ts";
import { orderCreated } from "./events/ecommerce.ts";
import { parseTopicName, topicName } from "./topics.ts";
import { dlqTopicOf } from "../ports/event_log.ts";

const context = {
  producer: "order-service",
  traceId: "0af7651916cd43dd8448eb211c80319c",
  correlationId: "corr-1",
  now: () => new Date("2026-01-01T12:00:00Z"),
};
const payload = {
  orderId: "ORDER-123",
  userId: "USER-9",
  totalAmount: "129.50",
  currency: "USD",
  items: [{ productId: "P1", qty: 2, price: "25.00" }],
};

Deno.test("createEnvelope() fills every field of seed 001 section 21 and keys by orderId", () => {
  const envelope = createEnvelope(orderCreated, payload, context);
  assert.deepEqual(Object.keys(envelope).sort(), [
    "correlationId",
    "eventId",
    "eventType",
    "occurredAt",
    "partitionKey",
    "payload",
    "producer",
    "schemaVersion",
    "tenantId",
    "traceId",
  ]);
  assert.equal(envelope.eventType, "ecommerce.order.order.created.v1");
  assert.equal(envelope.partitionKey, "ORDER-123");
  assert.equal(envelope.occurredAt, "2026-01-01T12:00:00.000Z");
  assert.equal(envelope.tenantId, "default");
});

Deno.test("parseEnvelope() round-trips a valid envelope", () => {
  const envelope = createEnvelope(orderCreated, payload, context);
  const parsed = parseEnvelope(JSON.stringify(envelope));
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.envelope, envelope);
});

Deno.test("parseEnvelope() rejects bad JSON, unknown types, extra fields and bad payloads with a reason", () => {
  const good = createEnvelope(orderCreated, payload, context);
  const cases: [string, string, RegExp][] = [
    ["not json", "{", /Not JSON/],
    ["unknown type", JSON.stringify({ ...good, eventType: "ecommerce.order.order.exploded.v1" }), /Unknown event/],
    ["extra field", JSON.stringify({ ...good, extra: 1 }), /Bad envelope/],
    ["float money", JSON.stringify({ ...good, payload: { ...payload, totalAmount: 129.5 } }), /Bad payload/],
    ["bad trace id", JSON.stringify({ ...good, traceId: "xyz" }), /Bad envelope/],
  ];
  for (const [name, text, reason] of cases) {
    const parsed = parseEnvelope(text);
    assert.equal(parsed.ok, false, name);
    if (!parsed.ok) assert.match(parsed.reason, reason, name);
  }
});

Deno.test("createEnvelope() refuses a payload that breaks its schema", () => {
  assert.throws(() => createEnvelope(orderCreated, { ...payload, items: [] }, context));
});

Deno.test("topic names follow <domain>.<context>.<entity>.<eventType>.v<n>; DLQ appends .dlq", () => {
  assert.equal(
    topicName({ domain: "ecommerce", context: "order", entity: "order", eventType: "created", version: 1 }),
    "ecommerce.order.order.created.v1",
  );
  assert.throws(() => topicName({ domain: "Ecommerce", context: "o", entity: "o", eventType: "x", version: 1 }));
  assert.equal(parseTopicName("ecommerce.order.created.v1"), null);
  assert.equal(parseTopicName("ecommerce.pricing.flash_sale.started.v1")?.entity, "flash_sale");
  assert.equal(dlqTopicOf("ecommerce.order.order.created.v1"), "ecommerce.order.order.created.v1.dlq");
  for (const type of registeredEventTypes()) assert.notEqual(parseTopicName(type), null, type);
});
