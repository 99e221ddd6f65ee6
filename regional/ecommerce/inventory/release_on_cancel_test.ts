/**
 * The canceled event releases the order's reservation, whatever state it was held in (a paid order's
 * CONFIRMED one too), exactly once however often the event comes; a record that is not a canceled event is
 * dead-lettered; another region's cancel, mirrored in, is left alone. PGlite and the in-process event log; the Kafka and PostgreSQL adapters pass the same port
 * contracts.
 */
import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { orderCanceled } from "../../../shared/contracts/events/ecommerce.ts";
import { envelopeFor } from "../outbox/mod.ts";
import { eventually, migrateForInventory, productWithStock, stockRow } from "./_fixtures_for_test.ts";
import { confirmReservation, reserveStock } from "./reservations.ts";
import { startReleaseOnCancel } from "./release_on_cancel.ts";
import { readDeadLetters } from "../../../shared/testing/dead_letters.ts";
import { dlqTopicOf } from "../../../shared/ports/event_log.ts";
import { ORIGIN_REGION_HEADER } from "../../../shared/replication/event_mirror.ts";

Deno.test("[inventory] a canceled event releases its order's reservation, confirmed ones included, once", async () => {
  const sql = await createPgliteSql();
  const eventLog = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 20 }, warn: () => {} });
  let nudges = 0;
  const subscription = await startReleaseOnCancel({
    sql,
    eventLog,
    region: "east",
    groupId: "test.inventory-releases",
    nudgeOutbox: () => nudges++,
  });
  try {
    await migrateForInventory(sql);
    const product = await productWithStock(sql, 10);
    const [active, confirmed] = [crypto.randomUUID(), crypto.randomUUID()];
    for (const id of [active, confirmed]) {
      const outcome = await reserveStock(sql, {
        reservationId: id,
        items: [{ productId: product.id, qty: 3 }],
        ttlSec: 60,
      });
      assert.equal(outcome.ok, true);
    }
    // Paid, then canceled by an admin: a CONFIRMED reservation never expires on its own.
    assert.equal(await confirmReservation(sql, confirmed), true);
    assert.deepEqual(await stockRow(sql, product.id), { onHand: 10, reserved: 6 });
    const canceled = (orderId: string) => {
      const envelope = envelopeFor(orderCanceled, { orderId, userId: "alice", reason: "canceled by admin" }, "test");
      return { key: orderId, value: JSON.stringify(envelope) };
    };
    // Each event twice (a redelivery), plus one for an order that never reserved anything.
    await eventLog.publish(orderCanceled.eventType, [
      canceled(active),
      canceled(confirmed),
      canceled(active),
      canceled(confirmed),
      canceled(crypto.randomUUID()),
      { key: "poison", value: "not an envelope" },
    ]);
    await eventually("both reservations released", async () => {
      const row = await stockRow(sql, product.id);
      return row.reserved === 0 ? row : undefined;
    });
    const dead = await readDeadLetters(eventLog, orderCanceled.eventType);
    try {
      await eventually("the poison record dead-lettered", () => Promise.resolve(dead.records[0]));
      assert.deepEqual(dead.records.map((record) => record.value), ["not an envelope"]);
    } finally {
      await dead.close();
    }
    assert.deepEqual(await stockRow(sql, product.id), { onHand: 10, reserved: 0 }, "released once each");
    assert.equal(nudges, 2, "one stock event per release");
  } finally {
    await subscription.close();
    await eventLog.close();
    await sql.close();
  }
});

Deno.test("[inventory] a cancel mirrored in from another region releases nothing and writes no tombstone", async () => {
  const sql = await createPgliteSql();
  const eventLog = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 20 }, warn: () => {} });
  let nudges = 0;
  const subscription = await startReleaseOnCancel({
    sql,
    eventLog,
    region: "east",
    groupId: "test.inventory-releases",
    nudgeOutbox: () => nudges++,
  });
  try {
    await migrateForInventory(sql);
    const product = await productWithStock(sql, 10);
    const [held, local, named] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    for (const id of [held, local, named]) {
      const outcome = await reserveStock(sql, {
        reservationId: id,
        items: [{ productId: product.id, qty: 2 }],
        ttlSec: 60,
      });
      assert.equal(outcome.ok, true);
    }
    const westOrder = crypto.randomUUID();
    // One key, so one partition (of the topic and of its dead letters): records are handled in this order.
    const key = "one-partition";
    const canceled = (orderId: string, headers: Record<string, string> = {}) => {
      const envelope = envelopeFor(orderCanceled, { orderId, userId: "alice", reason: "canceled" }, "test");
      return { key, value: JSON.stringify(envelope), headers };
    };
    await eventLog.publish(orderCanceled.eventType, [
      // What the event mirror copies in from west: west's order, an id east holds (contrived) and a poison.
      canceled(westOrder, { [ORIGIN_REGION_HEADER]: "west" }),
      canceled(held, { [ORIGIN_REGION_HEADER]: "west" }),
      { key, value: "west's poison", headers: { [ORIGIN_REGION_HEADER]: "west" } },
      // East's own cancels: from its outbox (no header), or naming east.
      canceled(local),
      canceled(named, { [ORIGIN_REGION_HEADER]: "east" }),
    ]);
    await eventually("the local cancels released", async () => {
      const row = await stockRow(sql, product.id);
      return row.reserved === 2 ? row : undefined;
    });
    const claims = await sql.query`select 1 from inventory_reservation_requests where reservation_id = ${westOrder}`;
    assert.deepEqual(claims, [], "no tombstone for an order of another region");
    const statuses = await sql.query<{ status: string }>`
      select distinct status from inventory_reservations where reservation_id = ${held}`;
    assert.deepEqual(statuses, [{ status: "ACTIVE" }], "another region's cancel releases nothing here");
    assert.equal(nudges, 2, "one release per local cancel");
    // A marker behind anything the poison could have put in the dead letters (same partition, later).
    const dead = await readDeadLetters(eventLog, orderCanceled.eventType);
    try {
      await eventLog.publish(dlqTopicOf(orderCanceled.eventType), [{ key, value: "marker" }]);
      await eventually("the marker read", () => Promise.resolve(dead.records[0]));
      assert.deepEqual(dead.records.map((r) => r.value), ["marker"], "west's poison is dead-lettered in west");
    } finally {
      await dead.close();
    }
  } finally {
    await subscription.close();
    await eventLog.close();
    await sql.close();
  }
});
