/**
 * Lifecycle order on the embedded adapters (PGlite, in-process log and cache): an order's events published
 * out of order reach clients in lifecycle order, and an event whose predecessor never comes is stored after
 * the bound instead of being dead-lettered.
 */
import assert from "node:assert/strict";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCreated, orderFulfilled, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { readDeadLetters } from "../../../shared/testing/dead_letters.ts";
import {
  connectWs,
  createdPayload,
  eventually,
  type Harness,
  isEvent,
  paidPayload,
  startHarness,
} from "./_fixture_for_test.ts";

const trace = { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "c-order" };

/** The event log's warnings: each delivery of a held-back event fails with `OrderEventsHeldBack` and says so. */
type Warnings = { readonly message: string; readonly fields: Record<string, unknown> }[];

let sharedSql: Promise<Sql> | undefined;

function embeddedTest(
  name: string,
  lifecycleHoldMs: number,
  fn: (h: Harness, warnings: Warnings) => Promise<void>,
) {
  Deno.test({
    name: `[pglite+memory] ${name}`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      sharedSql ??= createPgliteSql();
      const warnings: Warnings = [];
      const eventLogWarn = (message: string, fields: Record<string, unknown>) => warnings.push({ message, fields });
      const harness = await startHarness("embedded", { sharedSql: await sharedSql, lifecycleHoldMs, eventLogWarn });
      try {
        await fn(harness, warnings);
      } finally {
        await harness.close();
      }
    },
  });
}

async function rowsOf(h: Harness, orderId: string): Promise<string[]> {
  const rows = await h.sql.query<{ status: string }>`
    select status from order_notifications where order_id = ${orderId} order by id`;
  return rows.map((r) => r.status);
}

/** Resolves once the consumer has held `eventId` back on `deliveries` deliveries (it was seen, and not stored). */
async function heldBack(warnings: Warnings, eventId: string, deliveries: number): Promise<void> {
  await eventually(`${eventId} held back ${deliveries} times`, () => {
    const count = warnings.filter(({ fields }) => {
      const error = String(fields.error);
      return error.includes("held back until their predecessor") && error.includes(eventId);
    }).length;
    return count >= deliveries ? true : undefined;
  });
}

embeddedTest(
  "paid before created and fulfilled before paid still reach the client as PENDING, PAID, FULFILLED",
  10_000,
  async (h, warnings) => {
    const userId = `u-${crypto.randomUUID()}`;
    const orderId = crypto.randomUUID();
    const client = await connectWs(h.wsUrl, await h.tokens.token(userId));
    client.send({ type: "subscribe", orderId });
    await client.next((f) => f.type === "subscribed");
    // The same paid record twice (a producer retry): it must be stored once.
    const paidEnvelope = createEnvelope(orderPaid, paidPayload(orderId, userId), trace);
    const paidRecord = { key: orderId, value: JSON.stringify(paidEnvelope) };
    await h.eventLog.publish(orderPaid.eventType, [paidRecord, paidRecord]);
    const fulfilledId = await h.publish(orderFulfilled, { orderId, userId });
    // Both were delivered twice and held back both times; only then is "nothing stored" worth asserting.
    await heldBack(warnings, paidEnvelope.eventId, 2);
    await heldBack(warnings, fulfilledId, 2);
    assert.deepEqual(await rowsOf(h, orderId), [], "paid and fulfilled are held while created is missing");
    assert.equal(client.all(isEvent).length, 0);

    await h.publish(orderCreated, createdPayload(orderId, userId));
    const events = [await client.next(isEvent), await client.next(isEvent), await client.next(isEvent)];
    assert.deepEqual(events.map((f) => [f.seq, f.status]), [[1, "PENDING"], [2, "PAID"], [3, "FULFILLED"]]);
    const ids = events.map((f) => BigInt(f.id));
    assert.ok(ids[0] < ids[1] && ids[1] < ids[2], "stream positions follow the lifecycle");
    // A later order's paid sits behind the duplicate on the paid topic: once it is stored, the duplicate has
    // been handled too.
    const laterOrderId = crypto.randomUUID();
    await h.publish(orderCreated, createdPayload(laterOrderId, userId));
    await h.publish(orderPaid, paidPayload(laterOrderId, userId));
    await eventually("the later order's paid", async () => (await rowsOf(h, laterOrderId)).length === 2 || undefined);
    assert.deepEqual(await rowsOf(h, orderId), ["PENDING", "PAID", "FULFILLED"], "the duplicate paid is skipped");
    assert.equal(client.all(isEvent).length, 3);
    await client.close();
  },
);

embeddedTest(
  "a paid whose created never comes is stored after the bound, not dead-lettered",
  1_000,
  async (h, warnings) => {
    const userId = `u-${crypto.randomUUID()}`;
    const orderId = crypto.randomUUID();
    const dlq = await readDeadLetters(h.eventLog, orderPaid.eventType);
    const client = await connectWs(h.wsUrl, await h.tokens.token(userId));
    client.send({ type: "subscribe", orderId });
    await client.next((f) => f.type === "subscribed");
    const publishedAt = Date.now();
    const paidId = await h.publish(orderPaid, paidPayload(orderId, userId));
    // Held on its first two deliveries (0 and ~200 ms; the next comes ~400 ms later, still within the bound).
    await heldBack(warnings, paidId, 2);
    assert.deepEqual(await rowsOf(h, orderId), [], "held within the bound");
    const event = await client.next(isEvent, 10_000);
    assert.deepEqual([event.seq, event.status], [1, "PAID"]);
    assert.ok(Date.now() - publishedAt >= 1_000, "not stored before the 1 s bound");
    // A created arriving late is still stored (after the paid: the order's history shows what was received).
    await h.publish(orderCreated, createdPayload(orderId, userId));
    assert.deepEqual([(await client.next(isEvent)).status], ["PENDING"]);
    await eventually("both rows", async () => (await rowsOf(h, orderId)).length === 2 ? true : undefined);
    assert.equal(dlq.records.length, 0, "nothing dead-lettered for a missing predecessor");
    await dlq.close();
    await client.close();
  },
);

Deno.test({
  name: "[pglite] close the shared database",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (sharedSql) await (await sharedSql).close();
  },
});
