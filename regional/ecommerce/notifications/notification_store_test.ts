import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCanceled, orderCreated, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { notificationsMigrations } from "./migrations.ts";
import {
  latestNotification,
  latestNotificationsOfOrders,
  recordOrderEvent,
  recordOrderEvents,
} from "./notification_store.ts";

const context = { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "test" };

function createdEvent(orderId: string, userId: string) {
  return createEnvelope(orderCreated, {
    orderId,
    userId,
    totalAmount: "10.00",
    currency: "EUR",
    items: [{ productId: crypto.randomUUID(), qty: 1, price: "10.00" }],
  }, context);
}

function paidEvent(orderId: string, userId: string) {
  return createEnvelope(orderPaid, { orderId, userId, amount: "10.00", currency: "EUR", authCode: "A1" }, context);
}

Deno.test("recordOrderEvents() stores a batch once, in order, numbering each order's events and skipping stored ones", async () => {
  const sql = await createPgliteSql();
  try {
    await migrate(sql, notificationsMigrations);
    const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
    const earlier = createdEvent(a, "u1");
    await recordOrderEvent(sql, earlier);
    const batch = [earlier, createdEvent(b, "u2"), paidEvent(a, "u1"), paidEvent(b, "u2")];
    const stored = await recordOrderEvents(sql, batch);
    assert.deepEqual(stored.map((s) => s.inserted), [false, true, true, true]);
    assert.deepEqual(stored.map((s) => [s.notification.orderId, s.notification.seq, s.notification.status]), [
      [a, 1, "PENDING"],
      [b, 1, "PENDING"],
      [a, 2, "PAID"],
      [b, 2, "PAID"],
    ]);
    const ids = stored.slice(1).map((s) => BigInt(s.notification.id));
    assert.ok(ids[0] < ids[1] && ids[1] < ids[2], "stream positions follow the batch order");
    // Delivered again (a crash before the offset commit): nothing new.
    const again = await recordOrderEvents(sql, batch);
    assert.deepEqual(again.map((s) => s.inserted), [false, false, false, false]);
    assert.deepEqual(again.map((s) => s.notification.id), stored.map((s) => s.notification.id));
    const newest = await latestNotificationsOfOrders(sql, [a, b, crypto.randomUUID()]);
    assert.deepEqual([...newest.values()].map((n) => n.status).sort(), ["PAID", "PAID"]);
    assert.equal(newest.get(a)!.id, stored[2].notification.id);
  } finally {
    await sql.close();
  }
});

Deno.test("an order's status is its furthest lifecycle state, not its newest row: a late paid never hides a cancel", async () => {
  const sql = await createPgliteSql();
  try {
    await migrate(sql, notificationsMigrations);
    const orderId = crypto.randomUUID();
    // canceled overtook paid (the README's "Not covered" case), so PAID is the newest row.
    const canceled = createEnvelope(orderCanceled, { orderId, userId: "u1", reason: "canceled by admin" }, context);
    const stored = await recordOrderEvents(sql, [createdEvent(orderId, "u1"), canceled, paidEvent(orderId, "u1")]);
    assert.deepEqual(stored.map((s) => s.notification.status), ["PENDING", "CANCELED", "PAID"]);
    const newest = await latestNotificationsOfOrders(sql, [orderId]);
    assert.equal(newest.get(orderId)!.status, "CANCELED", "so order_status:{id} is removed, not set to PAID");
    assert.equal((await latestNotification(sql, { kind: "order", orderId }))!.status, "CANCELED");
    // The personal channel's "now" stays the newest row: a subscriber must not be sent it again.
    assert.equal((await latestNotification(sql, { kind: "user", userId: "u1" }))!.id, stored[2].notification.id);
  } finally {
    await sql.close();
  }
});
