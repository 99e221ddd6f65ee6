/**
 * The delivery worker against a real HTTP endpoint on PGlite: what is recorded and sent while an endpoint's circuit
 * is half-open, deliveries whose secret does not open (tried again for a grace window: a rolling key change), the
 * schedule restarting through the first retry delay, and a shutdown that lets a delivery in flight finish.
 */
import assert from "node:assert/strict";
import { createMemoryWorkQueue } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { waitFor } from "../../../shared/ports/contract/_wait_for.ts";
import { dlqQueueOf, type QueueMessage, RetryLaterError, type Sql, type WorkQueue } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { declareDeliveryQueues, laneOf, laneQueueOf } from "./delivery_queues.ts";
import { createDeliveryHandler, type DeliveryWorkerOptions, startDeliveryWorker } from "./delivery_worker.ts";
import { webhooksMigrations } from "./migrations.ts";
import { createSecretBox, type SecretBox } from "./secret_box.ts";
import { createSubscription, deleteSubscription } from "./subscription_store.ts";

const EVENT_TYPE = "ecommerce.order.order.created.v1";
const newKey = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));

/** An endpoint answering `answer(n)` to its n-th request (1-based), recording when each arrived. */
function endpoint(answer: (n: number) => Promise<Response> | Response) {
  const arrivals: number[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    await request.body?.cancel();
    arrivals.push(performance.now());
    return await answer(arrivals.length);
  });
  return { url: `http://127.0.0.1:${server.addr.port}/hooks`, arrivals, close: () => server.shutdown() };
}

async function database(): Promise<Sql> {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...webhooksMigrations]);
  return sql;
}

/** A queue that records what the handler publishes (a DLQ or a restarted schedule). */
function recordingQueue() {
  const published: { queue: string; body: string; headers: Record<string, string> }[] = [];
  const queue = {
    publish: (name: string, body: string, options?: { headers?: Record<string, string> }) =>
      Promise.resolve(void published.push({ queue: name, body, headers: { ...options?.headers } })),
  } as unknown as WorkQueue;
  return { queue, published };
}

function messageFor(subscriptionId: string, attempt = 1, headers: Record<string, string> = {}) {
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

const outcomes = (sql: Sql) =>
  sql.query<{ outcome: string; final: boolean; error: string | null }>`
    select outcome, final, error from webhook_delivery_attempts order by id`;

Deno.test("deliveries arriving while a half-open trial is in flight are CIRCUIT_OPEN: no request, no failure", async () => {
  const sql = await database();
  // 1st request fails (opens the circuit); the 2nd, the trial, is healthy but slow (wide enough for the other
  // deliveries' bookkeeping to reach the breaker during it); later ones answer well within the timeout.
  const target = endpoint(async (n) => {
    if (n === 1) return new Response(null, { status: 500 });
    await new Promise((resolve) => setTimeout(resolve, n === 2 ? 2_400 : 900));
    return new Response(null, { status: 204 });
  });
  try {
    const box = await createSecretBox(undefined);
    const { id } = await createSubscription(sql, box, { ownerUserId: "p", url: target.url, events: [EVENT_TYPE] });
    const handler = createDeliveryHandler({
      sql,
      queue: recordingQueue().queue,
      box,
      nudgeOutbox: () => {},
      retryDelaysMs: [60_000, 60_000],
      deliveryTimeoutMs: 3_000,
      egress: "any",
      breaker: { consecutiveFailures: 1, halfOpenAfterMs: 100 },
    });
    await assert.rejects(handler(messageFor(id)));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Three at once: the first becomes the trial; the two others would have waited behind it.
    const settled = await Promise.allSettled([0, 1, 2].map(() => handler(messageFor(id))));
    assert.deepEqual(settled.map((s) => s.status).sort(), ["fulfilled", "rejected", "rejected"]);
    const rows = await outcomes(sql);
    assert.deepEqual(rows.map((r) => r.outcome).sort(), ["CIRCUIT_OPEN", "CIRCUIT_OPEN", "DELIVERED", "FAILED"]);
    assert.equal(rows.filter((r) => r.outcome === "FAILED").length, 1, "only the request that answered 500 failed");
    assert.equal(target.arrivals.length, 2, "no request besides the trial while it was in flight");
  } finally {
    await target.close();
    await sql.close();
  }
});

/** `box`, counting the secrets it is asked to open. */
function countingBox(box: SecretBox) {
  const counted = {
    box: { ...box, open: (stored: string, id: string) => (counted.opens++, box.open(stored, id)) },
    opens: 0,
  };
  return counted;
}

/** Publishes `message` to its lane, as the dispatcher does. */
const dispatch = (queue: WorkQueue, message: ReturnType<typeof messageFor>) =>
  queue.publish(laneQueueOf(laneOf(message.id)), message.body, { id: message.id });

Deno.test("a secret no key opens is tried again for the grace window, then fails for good; a deleted subscription's is skipped", async () => {
  const sql = await database();
  const queue = createMemoryWorkQueue();
  const retryDelaysMs = [100, 100];
  const graceMs = 700;
  try {
    const sealedWith = await createSecretBox(newKey());
    const owner = "partner-1";
    const deleted = await createSubscription(sql, sealedWith, {
      ownerUserId: owner,
      url: "https://partner.example/a",
      events: [EVENT_TYPE],
    });
    await deleteSubscription(sql, owner, deleted.id);
    const active = await createSubscription(sql, sealedWith, {
      ownerUserId: owner,
      url: "https://partner.example/b",
      events: [EVENT_TYPE],
    });
    await declareDeliveryQueues(queue, retryDelaysMs);
    // The secrets key changed and the one that sealed these secrets is not configured as the previous key.
    const keys = countingBox(await createSecretBox(newKey()));
    let nudges = 0;
    const worker = await startDeliveryWorker({
      sql,
      queue,
      box: keys.box,
      nudgeOutbox: () => void nudges++,
      retryDelaysMs,
      deliveryTimeoutMs: 1_000,
      egress: "any",
      secretUnreadableGraceMs: graceMs,
    });
    try {
      await dispatch(queue, messageFor(deleted.id));
      await waitFor("the skipped row", async () => (await outcomes(sql)).length === 1);
      assert.deepEqual((await outcomes(sql)).map((r) => r.outcome), ["SKIPPED"]);
      assert.equal(keys.opens, 0, "a deleted subscription's secret is not opened");

      const message = messageFor(active.id);
      const started = performance.now();
      await dispatch(queue, message);
      await waitFor("the final attempt", async () => (await outcomes(sql)).some((r) => r.final));
      const elapsedMs = performance.now() - started;
      assert.ok(elapsedMs >= graceMs, `failed for good after ${Math.round(elapsedMs)} ms, within the grace window`);
      assert.ok(keys.opens >= 3, `tried ${keys.opens} times during the grace window, every first retry delay`);
      // The tries made no request and used up no attempt: one row, the final one.
      const [, row, ...more] = await outcomes(sql);
      assert.equal(more.length, 0);
      assert.equal(row.outcome, "FAILED");
      assert.equal(row.final, true);
      assert.match(row.error!, /signing secret cannot be opened.*BV_WEBHOOK_SECRETS_KEY/);
      const events = await sql.query<{ payload: string }>`
        select envelope as payload from outbox where topic like '%webhook.delivery.failed%'`;
      assert.equal(events.length, 1);
      assert.match(events[0].payload, /signing secret cannot be opened/);
      assert.equal(nudges, 1);
      const dlq = dlqQueueOf(laneQueueOf(laneOf(message.id)));
      await queue.declare({ name: dlq });
      const dead: QueueMessage[] = [];
      await queue.consume(dlq, (deadMessage) => Promise.resolve(void dead.push(deadMessage)));
      await waitFor("the DLQ copy", () => dead.length === 1);
      assert.equal(dead[0].id, message.id);
      assert.match(dead[0].headers["x-bv-error"], /signing secret cannot be opened/);
    } finally {
      await worker.stop();
    }
  } finally {
    await queue.close();
    await sql.close();
  }
});

Deno.test("rolling change of the secrets key: a delivery an old-key instance cannot sign goes out from a new-key one", async () => {
  const sql = await database();
  const target = endpoint(() => new Response(null, { status: 204 }));
  const queue = createMemoryWorkQueue();
  const retryDelaysMs = [150, 150];
  try {
    const oldKey = newKey();
    // Instance A runs with the new key (the old one as previous) and seals a new subscription's secret with it.
    const newKeyBox = await createSecretBox(newKey(), oldKey);
    const { id } = await createSubscription(sql, newKeyBox, {
      ownerUserId: "p",
      url: target.url,
      events: [EVENT_TYPE],
    });
    await declareDeliveryQueues(queue, retryDelaysMs);
    const options = (box: SecretBox): DeliveryWorkerOptions => ({
      sql,
      queue,
      box,
      nudgeOutbox: () => {},
      retryDelaysMs,
      deliveryTimeoutMs: 1_000,
      egress: "any",
      secretUnreadableGraceMs: 60_000,
    });
    // Instance B has not been given the new key yet: it takes the delivery first.
    const oldKeys = countingBox(await createSecretBox(oldKey));
    const instanceB = await startDeliveryWorker(options(oldKeys.box));
    try {
      await dispatch(queue, messageFor(id));
      await waitFor("instance B's second try", () => oldKeys.opens >= 2);
    } finally {
      await instanceB.stop();
    }
    assert.equal(target.arrivals.length, 0);
    assert.deepEqual(await outcomes(sql), [], "no final row: the delivery was handed back");
    // B restarts with the new key (or A takes the delivery): it goes out after its retry delay.
    const instanceA = await startDeliveryWorker(options(newKeyBox));
    try {
      await waitFor("the delivery", async () => (await outcomes(sql)).length > 0);
      assert.deepEqual((await outcomes(sql)).map((r) => r.outcome), ["DELIVERED"]);
      assert.equal(target.arrivals.length, 1);
      const events = await sql.query`select 1 from outbox where topic like '%webhook.delivery.failed%'`;
      assert.equal(events.length, 0, "no failure event");
    } finally {
      await instanceA.stop();
    }
  } finally {
    await queue.close();
    await target.close();
    await sql.close();
  }
});

Deno.test("a secret sealed with BV_WEBHOOK_SECRETS_KEY_PREVIOUS still signs deliveries after the key changed", async () => {
  const sql = await database();
  const target = endpoint(() => new Response(null, { status: 204 }));
  try {
    const oldKey = newKey();
    const { id } = await createSubscription(sql, await createSecretBox(oldKey), {
      ownerUserId: "p",
      url: target.url,
      events: [EVENT_TYPE],
    });
    const handler = createDeliveryHandler({
      sql,
      queue: recordingQueue().queue,
      box: await createSecretBox(newKey(), oldKey),
      nudgeOutbox: () => {},
      retryDelaysMs: [1],
      deliveryTimeoutMs: 1_000,
      egress: "any",
    });
    await handler(messageFor(id));
    assert.deepEqual((await outcomes(sql)).map((r) => r.outcome), ["DELIVERED"]);
    assert.equal(target.arrivals.length, 1);
  } finally {
    await target.close();
    await sql.close();
  }
});

Deno.test("a delivery restarting its schedule waits the first retry delay before its next request", async () => {
  const sql = await database();
  const target = endpoint(() => new Response(null, { status: 503 }));
  const queue = createMemoryWorkQueue();
  const firstDelayMs = 600;
  try {
    const box = await createSecretBox(undefined);
    const { id } = await createSubscription(sql, box, { ownerUserId: "p", url: target.url, events: [EVENT_TYPE] });
    await declareDeliveryQueues(queue, [firstDelayMs]);
    const options: DeliveryWorkerOptions = {
      sql,
      queue,
      box,
      nudgeOutbox: () => {},
      retryDelaysMs: [firstDelayMs],
      deliveryTimeoutMs: 1_000,
      egress: "any",
    };
    const worker = await startDeliveryWorker(options);
    try {
      // The first step found the circuit open (no request); this is the last step, and its request fails.
      const message = messageFor(id, 2);
      const { deliveryId, eventId } = JSON.parse(message.body);
      await sql.query`
        insert into webhook_delivery_attempts (delivery_id, subscription_id, event_id, event_type, attempt, outcome, error)
        values (${deliveryId}, ${id}, ${eventId}, ${EVENT_TYPE}, 1, 'CIRCUIT_OPEN', 'Circuit open')`;
      await createDeliveryHandler(options)(message);
      assert.equal(target.arrivals.length, 1);
      // The restarted schedule's next request: its second real attempt, the last allowed (then the DLQ).
      await waitFor("the restarted schedule's request", () => target.arrivals.length === 2);
      const gapMs = target.arrivals[1] - target.arrivals[0];
      // The lanes scale the delay by 0.85 to 1.15.
      assert.ok(gapMs >= firstDelayMs * 0.85 - 20, `next request after ${Math.round(gapMs)} ms`);
      await waitFor("the final attempt", async () => (await outcomes(sql)).some((r) => r.final));
      assert.deepEqual((await outcomes(sql)).map((r) => r.outcome), ["CIRCUIT_OPEN", "FAILED", "FAILED"]);
    } finally {
      await worker.stop();
    }
  } finally {
    await queue.close();
    await target.close();
    await sql.close();
  }
});

Deno.test("stopping the worker lets a delivery in flight finish before it returns", async () => {
  const sql = await database();
  const target = endpoint(async () => {
    await new Promise((resolve) => setTimeout(resolve, 700));
    return new Response(null, { status: 204 });
  });
  const queue = createMemoryWorkQueue();
  try {
    const box = await createSecretBox(undefined);
    const { id } = await createSubscription(sql, box, { ownerUserId: "p", url: target.url, events: [EVENT_TYPE] });
    await declareDeliveryQueues(queue, [60_000]);
    const worker = await startDeliveryWorker({
      sql,
      queue,
      box,
      nudgeOutbox: () => {},
      retryDelaysMs: [60_000],
      deliveryTimeoutMs: 5_000,
      egress: "any",
    });
    const message = messageFor(id);
    await queue.publish(laneQueueOf(laneOf(message.id)), message.body, { id: message.id });
    await waitFor("the POST", () => target.arrivals.length === 1);
    await worker.stop();
    // Recorded before stop() resolved: the delivery was not handed back mid-POST (another instance would re-POST it).
    assert.deepEqual((await outcomes(sql)).map((r) => r.outcome), ["DELIVERED"]);
  } finally {
    await queue.close();
    await target.close();
    await sql.close();
  }
});

Deno.test("a stopping worker answers RetryLaterError to a new message: never acked untried", async () => {
  const sql = await database();
  let handler:
    | ((message: { id: string; attempt: number; headers: Record<string, string>; body: string }) => Promise<void>)
    | undefined;
  const queue = {
    consume: (_name: string, h: typeof handler) => {
      handler ??= h;
      return Promise.resolve({ cancel: () => Promise.resolve() });
    },
  } as unknown as WorkQueue;
  try {
    const box = await createSecretBox(undefined);
    const worker = await startDeliveryWorker({
      sql,
      queue,
      box,
      nudgeOutbox: () => {},
      retryDelaysMs: [1],
      deliveryTimeoutMs: 1_000,
      egress: "any",
    });
    await worker.stop();
    const error = await handler!(messageFor(crypto.randomUUID())).then(() => undefined, (e) => e);
    assert.ok(error instanceof RetryLaterError, String(error));
  } finally {
    await sql.close();
  }
});
