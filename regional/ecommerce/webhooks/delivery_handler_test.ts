/**
 * How the delivery handler classifies its failures for the work queue: a database or RabbitMQ failure is a
 * `RetryLaterError` (delivered again at the same step, never dead-lettered), even on the schedule's last step;
 * a malformed message is a counted failure. The work-queue contract proves what each kind then does. And
 * the last attempt of a copy that loses the race to another copy's terminal row (PGlite): dead-lettered only
 * if that row is a final failure.
 */
import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { dlqQueueOf, RetryLaterError, type Sql, type WorkQueue } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { laneOf, laneQueueOf } from "./delivery_queues.ts";
import { createDeliveryHandler } from "./delivery_worker.ts";
import { webhooksMigrations } from "./migrations.ts";
import { createSecretBox, type SecretBox } from "./secret_box.ts";
import { createSubscription } from "./subscription_store.ts";

const message = (attempt: number, body?: string) => ({
  id: "d-1",
  attempt,
  headers: {},
  body: body ?? JSON.stringify({
    v: 1,
    deliveryId: "d-1",
    subscriptionId: "s-1",
    eventId: "e-1",
    eventType: "ecommerce.order.order.created.v1",
    body: "{}",
  }),
});

function handlerWith(sql: Partial<Sql>) {
  const published: string[] = [];
  const queue = {
    publish: (name: string) => Promise.resolve(void published.push(name)),
  } as unknown as WorkQueue;
  const box = { encrypted: false, open: (s: string) => Promise.resolve(s) } as unknown as SecretBox;
  const handler = createDeliveryHandler({
    sql: sql as Sql,
    queue,
    box,
    nudgeOutbox: () => {},
    retryDelaysMs: [1],
    deliveryTimeoutMs: 1_000,
    egress: "any",
  });
  return { handler, published };
}

Deno.test("a database outage on the schedule's last step is RetryLaterError: no DLQ, no lost final row", async () => {
  const { handler, published } = handlerWith({
    query: () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432")),
  });
  for (const attempt of [1, 2]) {
    const error = await handler(message(attempt)).then(() => undefined, (e) => e);
    assert.ok(error instanceof RetryLaterError, `attempt ${attempt}: ${error}`);
    assert.match(error.message, /ECONNREFUSED/);
  }
  assert.deepEqual(published, [], "nothing dead-lettered or re-cycled by the handler");
});

Deno.test("a malformed delivery message is a counted failure (the schedule, then the DLQ)", async () => {
  const { handler } = handlerWith({ query: () => Promise.reject(new Error("unused")) });
  const error = await handler(message(1, '{"v":1}')).then(() => undefined, (e) => e);
  assert.ok(error instanceof TypeError);
  assert.ok(!(error instanceof RetryLaterError));
});

/**
 * A delivery on its last step whose endpoint fails this copy's POST; while that POST is in flight, a racing
 * copy of the same delivery writes `racingOutcome` as its terminal row (the endpoint does it, so the row
 * lands after this copy read its history; undefined: no race). Returns what this copy did.
 */
async function lastStepLosingTheRaceTo(racingOutcome: { outcome: string; final: boolean } | undefined) {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...webhooksMigrations]);
  const deliveryId = crypto.randomUUID();
  const eventId = crypto.randomUUID();
  const eventType = "ecommerce.order.order.created.v1";
  let subscriptionId = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    if (!racingOutcome) return new Response("this copy fails", { status: 503 });
    await sql.query`
      insert into webhook_delivery_attempts
        (delivery_id, subscription_id, event_id, event_type, attempt, outcome, final, error)
      values (${deliveryId}, ${subscriptionId}, ${eventId}, ${eventType}, 2, ${racingOutcome.outcome},
              ${racingOutcome.final}, ${racingOutcome.final ? "The endpoint answered HTTP 503" : null})`;
    return new Response("this copy fails", { status: 503 });
  });
  try {
    const box = await createSecretBox(undefined);
    subscriptionId = (await createSubscription(sql, box, {
      ownerUserId: "partner-1",
      url: `http://127.0.0.1:${server.addr.port}/hooks`,
      events: [eventType],
    })).id;
    // The first step failed already; the message is on its last (second) attempt.
    await sql.query`
      insert into webhook_delivery_attempts
        (delivery_id, subscription_id, event_id, event_type, attempt, outcome, error)
      values (${deliveryId}, ${subscriptionId}, ${eventId}, ${eventType}, 1, 'FAILED', 'The endpoint answered HTTP 503')`;
    const published: string[] = [];
    const queue = {
      publish: (name: string) => Promise.resolve(void published.push(name)),
    } as unknown as WorkQueue;
    let nudges = 0;
    const handler = createDeliveryHandler({
      sql,
      queue,
      box,
      nudgeOutbox: () => void nudges++,
      retryDelaysMs: [1],
      deliveryTimeoutMs: 5_000,
      // The racing endpoint listens on loopback.
      egress: "any",
    });
    await handler({
      id: deliveryId,
      attempt: 2,
      headers: {},
      body: JSON.stringify({ v: 1, deliveryId, subscriptionId, eventId, eventType, body: "{}" }),
    });
    const [{ n: failureEvents }] = await sql.query<{ n: number }>`
      select count(*)::int as n from outbox where topic like '%webhook.delivery.failed%'`;
    return { published, failureEvents, nudges, dlq: dlqQueueOf(laneQueueOf(laneOf(deliveryId))) };
  } finally {
    await server.shutdown();
    await sql.close();
  }
}

Deno.test("a last attempt that fails with no copy racing it is dead-lettered with one failure event", async () => {
  const outcome = await lastStepLosingTheRaceTo(undefined);
  assert.deepEqual(outcome.published, [outcome.dlq]);
  assert.equal(outcome.failureEvents, 1);
  assert.equal(outcome.nudges, 1);
});

Deno.test("a last attempt that fails after a racing copy delivered is acked: no DLQ, no failure event", async () => {
  const outcome = await lastStepLosingTheRaceTo({ outcome: "DELIVERED", final: false });
  assert.deepEqual(outcome.published, [], "the delivered delivery is not dead-lettered");
  assert.equal(outcome.failureEvents, 0);
  assert.equal(outcome.nudges, 0);
});

Deno.test("a last attempt that fails after a racing copy failed for good finishes the move to the DLQ", async () => {
  const outcome = await lastStepLosingTheRaceTo({ outcome: "FAILED", final: true });
  assert.deepEqual(outcome.published, [outcome.dlq]);
  assert.equal(outcome.failureEvents, 0, "the racing copy's transaction owns the one failure event");
});
