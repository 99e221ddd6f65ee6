/**
 * A database outage longer than the consumer's attempts, on the embedded adapters (PGlite behind a switch,
 * in-process log and cache): the order event is redelivered until the database is back, then stored and
 * pushed; nothing is dead-lettered. Before `RetryLaterError`, the 6th failed delivery dead-lettered it and
 * no client ever saw it.
 */
import assert from "node:assert/strict";
import { orderCreated } from "../../../shared/contracts/events/ecommerce.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { readDeadLetters } from "../../../shared/testing/dead_letters.ts";
import { connectWs, createdPayload, eventually, isEvent, startHarness } from "./_fixture_for_test.ts";
import { ORDER_EVENT_ATTEMPTS_MAX } from "./order_event_consumer.ts";

/** `sql` behind a switch: while `down`, every statement and transaction fails as a lost connection would. */
function switchable(sql: Sql) {
  const state = { down: false };
  const refuse = () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432 (test outage)"));
  const wrapped: Sql = {
    query: (strings, ...values) => state.down ? refuse() : sql.query(strings, ...values),
    exec: (statements) => state.down ? refuse() : sql.exec(statements),
    transaction: (fn) => state.down ? refuse() : sql.transaction(fn),
    ping: (timeoutMs) => state.down ? refuse() : sql.ping(timeoutMs),
    close: () => sql.close(),
  };
  return { sql: wrapped, state };
}

Deno.test({
  name:
    "[pglite+memory] an order event outlasts a database outage longer than its attempts: stored and pushed, not dead-lettered",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const database = switchable(await createPgliteSql());
    const failures: string[] = [];
    const harness = await startHarness("embedded", {
      sharedSql: database.sql,
      eventLogRetry: { initialDelayMs: 20, maxDelayMs: 50 },
      eventLogWarn: (_message, fields) => {
        if (String(fields.error).includes("test outage")) failures.push(String(fields.error));
      },
    });
    try {
      const { records: dead, close: closeDlq } = await readDeadLetters(harness.eventLog, orderCreated.eventType);
      const userId = `u-${crypto.randomUUID()}`;
      const orderId = crypto.randomUUID();
      const client = await connectWs(harness.wsUrl, await harness.tokens.token(userId));
      client.send({ type: "subscribe", orderId });
      await client.next((f) => f.type === "subscribed");

      database.state.down = true;
      await harness.publish(orderCreated, createdPayload(orderId, userId));
      // Twice the attempts a counted failure gets: the old rule had dead-lettered it by then.
      await eventually(
        "deliveries beyond maxAttempts",
        () => failures.length >= 2 * ORDER_EVENT_ATTEMPTS_MAX || undefined,
      );
      assert.equal(client.all(isEvent).length, 0, "nothing to push while the database is down");
      database.state.down = false;

      const event = await client.next(isEvent, 10_000);
      assert.deepEqual([event.orderId, event.status], [orderId, "PENDING"]);
      const rows = await database.sql.query<{ status: string }>`
        select status from order_notifications where order_id = ${orderId}`;
      assert.deepEqual(rows.map((r) => r.status), ["PENDING"]);
      assert.equal(dead.length, 0, "nothing dead-lettered");
      assert.match(failures[0], /RetryLaterError|delivered again/);
      await client.close();
      await closeDlq();
    } finally {
      await harness.close();
      await database.sql.close();
    }
  },
});
