/**
 * The per-endpoint bulkhead: slots per key, freed whatever way a task ends (no key left behind), origins as keys,
 * the deferral header; and, on PGlite with a real endpoint, what the delivery handler does when an endpoint is full.
 */
import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { metrics } from "../../../shared/observability/mod.ts";
import { RetryLaterError, type WorkQueue } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { laneOf, laneQueueOf } from "./delivery_queues.ts";
import { createDeliveryHandler } from "./delivery_worker.ts";
import {
  createEndpointBulkhead,
  deferDelivery,
  DEFERRALS_HEADER,
  deferralsOf,
  ENDPOINT_DEFERRALS_MAX,
  ENDPOINT_FULL,
  endpointOf,
} from "./endpoint_bulkhead.ts";
import { webhooksMigrations } from "./migrations.ts";
import { createSecretBox } from "./secret_box.ts";
import { createSubscription } from "./subscription_store.ts";

/** A promise with its resolve and reject. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => (resolve = res, reject = rej));
  return { promise, resolve, reject };
}

Deno.test("tryRun() runs at most `limit` tasks per key; a full key neither runs nor waits; other keys are apart", async () => {
  const bulkhead = createEndpointBulkhead(2);
  const gates = [deferred<string>(), deferred<string>()];
  const running = gates.map((gate) => bulkhead.tryRun("https://a.example", () => gate.promise));
  assert.equal(bulkhead.inFlight("https://a.example"), 2);
  let ran = false;
  assert.equal(await bulkhead.tryRun("https://a.example", () => (ran = true, Promise.resolve("x"))), ENDPOINT_FULL);
  assert.equal(ran, false, "a task finding its key full is not run");
  assert.equal(await bulkhead.tryRun("https://b.example", () => Promise.resolve("b")), "b");
  gates[0].resolve("first");
  assert.equal(await running[0], "first");
  assert.equal(bulkhead.inFlight("https://a.example"), 1);
  assert.equal(await bulkhead.tryRun("https://a.example", () => Promise.resolve("again")), "again");
  gates[1].resolve("second");
  await running[1];
  assert.equal(bulkhead.keys, 0);
});

Deno.test("tryRun() frees the slot and forgets the key however the task ends: rejection, throw, timeout", async () => {
  const bulkhead = createEndpointBulkhead(3);
  const key = "https://slow.example";
  const outcomes = await Promise.allSettled([
    bulkhead.tryRun(key, () => Promise.reject(new Error("connection reset"))),
    bulkhead.tryRun(key, () => {
      throw new TypeError("thrown before any promise");
    }),
    // As a fetch given AbortSignal.timeout rejects.
    bulkhead.tryRun(key, () =>
      new Promise((_, reject) => {
        const signal = AbortSignal.timeout(20);
        signal.addEventListener("abort", () => reject(signal.reason));
      })),
  ]);
  assert.deepEqual(outcomes.map((o) => o.status), ["rejected", "rejected", "rejected"]);
  assert.equal((outcomes[2] as PromiseRejectedResult).reason.name, "TimeoutError");
  assert.equal(bulkhead.inFlight(key), 0);
  assert.equal(bulkhead.keys, 0, "no entry left for an idle key");
  // Many endpoints, each failing once: still nothing kept.
  await Promise.allSettled(
    Array.from(
      { length: 1_000 },
      (_, i) => bulkhead.tryRun(`https://e${i}.example`, () => Promise.reject(new Error())),
    ),
  );
  assert.equal(bulkhead.keys, 0);
  // Every slot is free again.
  const gates = [deferred<void>(), deferred<void>(), deferred<void>()];
  const running = gates.map((gate) => bulkhead.tryRun(key, () => gate.promise));
  assert.equal(await bulkhead.tryRun(key, () => Promise.resolve()), ENDPOINT_FULL);
  gates.forEach((gate) => gate.resolve());
  await Promise.all(running);
  assert.equal(bulkhead.keys, 0);
});

Deno.test("createEndpointBulkhead() refuses a limit that is not 1 to 1000", () => {
  for (const bad of [0, -1, 1.5, 1_001, Number.NaN]) {
    assert.throws(() => createEndpointBulkhead(bad), RangeError, String(bad));
  }
});

Deno.test("endpointOf() is the origin: paths and queries share it, another port or scheme does not", () => {
  assert.equal(endpointOf("https://Hooks.Example/a?x=1"), "https://hooks.example");
  assert.equal(endpointOf("https://hooks.example:443/b"), "https://hooks.example");
  assert.equal(endpointOf("https://hooks.example:8443/b"), "https://hooks.example:8443");
  assert.equal(endpointOf("http://hooks.example/b"), "http://hooks.example");
  assert.equal(endpointOf("not a url"), "not a url");
});

/** A queue recording what is published to it. */
function recordingQueue() {
  const published: { queue: string; headers: Record<string, string> }[] = [];
  const queue = {
    publish: (name: string, _body: string, options?: { headers?: Record<string, string> }) =>
      Promise.resolve(void published.push({ queue: name, headers: { ...options?.headers } })),
  } as unknown as WorkQueue;
  return { queue, published };
}

async function deferredCount(): Promise<number> {
  const metric = await metrics.registry.getSingleMetric("bv_webhook_deliveries_deferred_total")?.get();
  return metric?.values.reduce((sum, value) => sum + value.value, 0) ?? 0;
}

Deno.test("deferDelivery() republishes with the count one higher (counted), until ENDPOINT_DEFERRALS_MAX", async () => {
  const { queue, published } = recordingQueue();
  const before = await deferredCount();
  const message = { id: "d-1", body: "{}", attempt: 3, headers: { "x-webhook-cycle": "1" } };
  assert.equal(deferralsOf(message), 0);
  assert.equal(await deferDelivery(queue, "lane-0", message), true);
  assert.deepEqual(published, [{ queue: "lane-0", headers: { "x-webhook-cycle": "1", [DEFERRALS_HEADER]: "1" } }]);
  const again = { ...message, headers: published[0].headers };
  assert.equal(await deferDelivery(queue, "lane-0", again), true);
  assert.equal(published[1].headers[DEFERRALS_HEADER], "2");
  assert.equal(await deferredCount(), before + 2);
  const spent = { ...message, headers: { [DEFERRALS_HEADER]: String(ENDPOINT_DEFERRALS_MAX) } };
  assert.equal(await deferDelivery(queue, "lane-0", spent), false);
  assert.equal(published.length, 2);
  assert.equal(deferralsOf({ ...message, headers: { [DEFERRALS_HEADER]: "junk" } }), 0);
});

const EVENT_TYPE = "ecommerce.order.order.created.v1";

function messageFor(subscriptionId: string, headers: Record<string, string> = {}, attempt = 2) {
  const deliveryId = crypto.randomUUID();
  const body = JSON.stringify({
    v: 1,
    deliveryId,
    subscriptionId,
    eventId: crypto.randomUUID(),
    eventType: EVENT_TYPE,
    body: "{}",
  });
  return { id: deliveryId, attempt, headers, body };
}

Deno.test("the handler defers a delivery to a full endpoint untried, bounces it to the first retry, and fails it for good after the last deferral", async () => {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...webhooksMigrations]);
  let requests = 0;
  const answer = deferred<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    await request.body?.cancel();
    requests++;
    await answer.promise;
    return new Response(null, { status: 204 });
  });
  try {
    const box = await createSecretBox(undefined);
    const url = `http://127.0.0.1:${server.addr.port}/hooks`;
    const { id } = await createSubscription(sql, box, { ownerUserId: "p", url, events: [EVENT_TYPE] });
    const { queue, published } = recordingQueue();
    const options = {
      sql,
      queue,
      box,
      nudgeOutbox: () => {},
      retryDelaysMs: [60_000, 60_000],
      deliveryTimeoutMs: 5_000,
      egress: "any" as const,
      endpointConcurrency: 1,
    };
    const handler = createDeliveryHandler(options);
    const first = messageFor(id);
    const inFlight = handler(first);
    while (requests === 0) await new Promise((resolve) => setTimeout(resolve, 5));

    // Full: republished to its lane with the count, acked, no request and no row.
    const second = messageFor(id);
    await handler(second);
    // A copy: deepEqual would narrow `published` to this one entry's type.
    assert.deepEqual(published.slice(), [{
      queue: laneQueueOf(laneOf(second.id)),
      headers: { [DEFERRALS_HEADER]: "1" },
    }]);
    // Back in its lane at attempt 1: on to the first retry queue, untried.
    await assert.rejects(handler({ ...second, attempt: 1, headers: published[0].headers }), /Endpoint busy/);
    // A schedule without retries has no queue to park in: tried again later, the work queue's way.
    const noRetries = createDeliveryHandler({ ...options, retryDelaysMs: [] });
    const blocker = noRetries(messageFor(id));
    while (requests < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    await assert.rejects(noRetries(messageFor(id)), RetryLaterError);
    // Further along its schedule (step 3): parking would bring it back at step 2 and cut its later, longer delays
    // short, so it waits at its step, the work queue's way, and nothing is republished.
    const publishedBefore = published.length;
    await assert.rejects(handler(messageFor(id, {}, 3)), RetryLaterError);
    assert.equal(published.length, publishedBefore);
    // Deferred ENDPOINT_DEFERRALS_MAX times already: fails for good (final row, event, DLQ).
    const spent = messageFor(id, { [DEFERRALS_HEADER]: String(ENDPOINT_DEFERRALS_MAX) });
    await handler(spent);
    assert.equal(published.at(-1)!.queue, `${laneQueueOf(laneOf(spent.id))}.dlq`);
    assert.match(published.at(-1)!.headers["x-bv-error"], /in flight at each of 120 tries/);

    answer.resolve();
    await Promise.all([inFlight, blocker]);
    assert.equal(requests, 2, "only the deliveries holding a slot were sent");
    const rows = await sql.query<{ delivery_id: string; outcome: string; final: boolean }>`
      select delivery_id, outcome, final from webhook_delivery_attempts order by id`;
    assert.deepEqual(rows.filter((r) => r.delivery_id === second.id), [], "a deferral writes no row");
    assert.deepEqual(rows.filter((r) => r.delivery_id === spent.id).map((r) => [r.outcome, r.final]), [[
      "FAILED",
      true,
    ]]);
    assert.deepEqual(rows.filter((r) => r.delivery_id === first.id).map((r) => r.outcome), ["DELIVERED"]);
  } finally {
    await server.shutdown();
    await sql.close();
  }
});
