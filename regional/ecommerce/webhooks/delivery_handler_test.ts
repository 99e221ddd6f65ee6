/**
 * How the delivery handler classifies its failures for the work queue: a database or RabbitMQ failure is a
 * `RetryLaterError` (delivered again at the same step, never dead-lettered), even on the schedule's last step;
 * a malformed message is a counted failure. The work-queue contract proves what each kind then does.
 */
import assert from "node:assert/strict";
import { RetryLaterError, type Sql, type WorkQueue } from "../../../shared/ports/mod.ts";
import { createDeliveryHandler } from "./delivery_worker.ts";
import type { SecretBox } from "./secret_box.ts";

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
