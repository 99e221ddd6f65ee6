import assert from "node:assert/strict";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCanceled, orderCreated, orderFulfilled, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import { createLifecycleGate, HELD_EVENTS_MAX } from "./lifecycle_gate.ts";

const context = { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "gate" };
const orderId = "5f0c7c1e-8d1b-4c1e-9a43-3c1e5b0f2a11";
const userId = "u-gate";
const paid = () =>
  createEnvelope(orderPaid, { orderId, userId, amount: "1.00", currency: "EUR", authCode: "A" }, context);
const types = (...names: string[]) => new Set(names);

Deno.test("admit() lets each event through only after its lifecycle predecessor", () => {
  const gate = createLifecycleGate({ attemptsMax: 6, now: () => 0 });
  const created = createEnvelope(orderCreated, {
    orderId,
    userId,
    totalAmount: "1.00",
    currency: "EUR",
    items: [{ productId: crypto.randomUUID(), qty: 1, price: "1.00" }],
  }, context);
  const fulfilled = createEnvelope(orderFulfilled, { orderId, userId }, context);
  const canceled = createEnvelope(orderCanceled, { orderId, userId, reason: "changed mind" }, context);
  const paidEvent = paid();
  assert.equal(gate.admit(created, types()), true);
  assert.equal(gate.admit(paidEvent, types()), false);
  assert.equal(gate.admit(canceled, types()), false);
  assert.equal(gate.admit(fulfilled, types(orderCreated.eventType)), false, "fulfilled waits for paid");
  assert.equal(gate.heldCount(), 3);
  assert.equal(gate.admit(canceled, types(orderCreated.eventType)), true);
  assert.equal(gate.admit(paidEvent, types(orderCreated.eventType)), true);
  assert.equal(gate.admit(fulfilled, types(orderCreated.eventType, orderPaid.eventType)), true);
  assert.equal(gate.heldCount(), 0, "an admitted event is forgotten");
});

Deno.test("admit() stores a held event anyway once holdMs has passed since its first delivery", () => {
  let nowMs = 1_000;
  const gate = createLifecycleGate({ holdMs: 5_000, attemptsMax: 100, now: () => nowMs });
  const event = paid();
  assert.equal(gate.admit(event, types()), false);
  nowMs += 4_999;
  assert.equal(gate.admit(event, types()), false);
  nowMs += 1;
  assert.equal(gate.admit(event, types()), true);
  assert.equal(gate.heldCount(), 0);
});

Deno.test("admit() stores a held event on the subscription's last attempt, so a hold never dead-letters", () => {
  const gate = createLifecycleGate({ holdMs: 60_000, attemptsMax: 3, now: () => 0 });
  const event = paid();
  assert.deepEqual([1, 2, 3].map(() => gate.admit(event, types())), [false, false, true]);
});

Deno.test("admit() with HELD_EVENTS_MAX held stores a new event at once and keeps counting the held ones", () => {
  const gate = createLifecycleGate({ holdMs: 60_000, attemptsMax: 6, now: () => 0 });
  const oldest = paid();
  assert.equal(gate.admit(oldest, types()), false);
  for (let i = 1; i < HELD_EVENTS_MAX; i++) assert.equal(gate.admit(paid(), types()), false);
  assert.equal(gate.heldCount(), HELD_EVENTS_MAX);
  // Full: one more is stored now rather than held by forgetting another.
  assert.equal(gate.admit(paid(), types()), true);
  assert.equal(gate.heldCount(), HELD_EVENTS_MAX);
  // The oldest kept its count: deliveries 2 to 5 hold, the 6th (the event log's last attempt) stores it.
  for (let delivery = 2; delivery < 6; delivery++) assert.equal(gate.admit(oldest, types()), false);
  assert.equal(gate.admit(oldest, types()), true, "stored on the last attempt, never dead-lettered");
});

Deno.test("createLifecycleGate() refuses a negative hold or a zero attempt bound", () => {
  assert.throws(() => createLifecycleGate({ holdMs: -1, attemptsMax: 6 }), RangeError);
  assert.throws(() => createLifecycleGate({ attemptsMax: 0 }), RangeError);
});
