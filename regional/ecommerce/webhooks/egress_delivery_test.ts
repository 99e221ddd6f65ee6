/**
 * The egress policy at delivery time, on PGlite with the real delivery handler and a real HTTP receiver: under
 * `public` a destination that is (or resolves to) a non-public address gets no request, and the refusal follows
 * the normal path (a failed attempt, then the DLQ with the failure event); a redirect is never followed; resolving
 * and the POST share one deadline per attempt.
 * Subscriptions are written straight to the database, as a row made before the policy (or under `any`) would be.
 */
import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { dlqQueueOf, type QueueMessage, type Sql, type WorkQueue } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { laneOf, laneQueueOf } from "./delivery_queues.ts";
import { createDeliveryHandler } from "./delivery_worker.ts";
import type { ResolveHost } from "./destination_check.ts";
import type { WebhookEgress } from "./egress_policy.ts";
import { webhooksMigrations } from "./migrations.ts";
import { createSecretBox, type SecretBox } from "./secret_box.ts";
import { createSubscription } from "./subscription_store.ts";

const EVENT_TYPE = "ecommerce.order.order.created.v1";
/** How long the receiver's `/slow` path waits before answering. */
const SLOW_ANSWER_MS = 1_200;

interface Harness {
  readonly sql: Sql;
  readonly box: SecretBox;
  /** Paths the receiver was asked for, in order. */
  readonly received: string[];
  readonly receiverPort: number;
  /** Messages the handler published (to a DLQ), by queue name. */
  readonly published: string[];
  subscribe(url: string): Promise<string>;
  deliver(
    subscriptionId: string,
    attempt: number,
    options: {
      egress: WebhookEgress;
      resolveHost?: ResolveHost;
      retryDelaysMs?: number[];
      deliveryTimeoutMs?: number;
    },
  ): Promise<{ deliveryId: string; error: unknown }>;
  close(): Promise<void>;
}

/** A receiver whose `/redirect` answers 302 to its own `/internal`, `/slow` 204 after SLOW_ANSWER_MS, and every other
 * path 204 at once. */
async function harness(): Promise<Harness> {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...webhooksMigrations]);
  const box = await createSecretBox(undefined);
  const received: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = new URL(request.url).pathname;
    received.push(path);
    await request.body?.cancel();
    if (path === "/redirect") return new Response(null, { status: 302, headers: { location: "/internal" } });
    if (path === "/slow") await new Promise((resolve) => setTimeout(resolve, SLOW_ANSWER_MS));
    return new Response(null, { status: 204 });
  });
  const published: string[] = [];
  const queue = {
    publish: (name: string) => Promise.resolve(void published.push(name)),
  } as unknown as WorkQueue;
  const eventId = crypto.randomUUID();
  // One delivery per subscription (the dispatcher's id is a UUID too), the same across its attempts.
  const deliveryIds = new Map<string, string>();
  return {
    sql,
    box,
    received,
    receiverPort: server.addr.port,
    published,
    subscribe: async (url) =>
      (await createSubscription(sql, box, { ownerUserId: "partner-1", url, events: [EVENT_TYPE] })).id,
    deliver: async (subscriptionId, attempt, options) => {
      const deliveryId = deliveryIds.get(subscriptionId) ?? crypto.randomUUID();
      deliveryIds.set(subscriptionId, deliveryId);
      const handler = createDeliveryHandler({
        sql,
        queue,
        box,
        nudgeOutbox: () => {},
        retryDelaysMs: options.retryDelaysMs ?? [1, 1],
        deliveryTimeoutMs: options.deliveryTimeoutMs ?? 2_000,
        egress: options.egress,
        resolveHost: options.resolveHost,
      });
      const message: QueueMessage = {
        id: deliveryId,
        attempt,
        headers: {},
        body: JSON.stringify({ v: 1, deliveryId, subscriptionId, eventId, eventType: EVENT_TYPE, body: "{}" }),
      };
      const error = await handler(message).then(() => undefined, (e) => e);
      return { deliveryId, error };
    },
    close: async () => {
      await server.shutdown();
      await sql.close();
    },
  };
}

async function attemptsOf(sql: Sql, deliveryId: string) {
  return await sql.query<
    { attempt: number; outcome: string; final: boolean; http_status: number | null; error: string; duration_ms: number }
  >`
    select attempt, outcome, final, http_status, error, duration_ms from webhook_delivery_attempts
    where delivery_id = ${deliveryId} order by id`;
}

Deno.test("under egress public a delivery to a loopback URL is not sent: failed attempts, then the DLQ", async () => {
  const h = await harness();
  try {
    const id = await h.subscribe(`http://127.0.0.1:${h.receiverPort}/hooks`);
    const first = await h.deliver(id, 1, { egress: "public", retryDelaysMs: [1] });
    assert.deepEqual(h.received, [], "the receiver got nothing");
    assert.equal((first.error as Error)?.name, "DeliveryAttemptFailed", String(first.error));
    const [row] = await attemptsOf(h.sql, first.deliveryId);
    assert.equal(row.outcome, "FAILED");
    assert.equal(row.http_status, null);
    assert.match(row.error, /^Not sent: destination 127\.0\.0\.1 is a non-public address \(loopback\)/);
    assert.match(row.error, /BV_WEBHOOK_EGRESS=public/);

    // The last step: the refusal ends like any failed delivery, with the reason as the failure event's lastError.
    const last = await h.deliver(id, 2, { egress: "public", retryDelaysMs: [1] });
    assert.equal(last.error, undefined);
    assert.deepEqual(h.received, []);
    assert.deepEqual(h.published, [dlqQueueOf(laneQueueOf(laneOf(last.deliveryId)))]);
    const attempts = await attemptsOf(h.sql, last.deliveryId);
    assert.deepEqual(attempts.map((a) => [a.attempt, a.outcome, a.final]), [[1, "FAILED", false], [2, "FAILED", true]]);
    const outbox = await h.sql.query<{ envelope: string }>`
      select envelope from outbox where topic like '%webhook.delivery.failed%'`;
    assert.equal(outbox.length, 1);
    assert.match(JSON.parse(outbox[0].envelope).payload.lastError, /non-public address \(loopback\)/);
  } finally {
    await h.close();
  }
});

Deno.test("under egress public a name resolving to 127.0.0.1 is not sent, and the attempt says so", async () => {
  const h = await harness();
  try {
    const resolveHost: ResolveHost = (name) =>
      Promise.resolve(name === "hooks.partner.example" ? ["93.184.216.34", "127.0.0.1"] : []);
    const id = await h.subscribe(`http://hooks.partner.example:${h.receiverPort}/hooks`);
    const { deliveryId, error } = await h.deliver(id, 1, { egress: "public", resolveHost });
    assert.equal((error as Error)?.name, "DeliveryAttemptFailed", String(error));
    assert.deepEqual(h.received, []);
    const [row] = await attemptsOf(h.sql, deliveryId);
    assert.equal(row.outcome, "FAILED");
    assert.match(
      row.error,
      /^Not sent: destination "hooks\.partner\.example" resolves to a non-public address 127\.0\.0\.1 \(loopback\)/,
    );
  } finally {
    await h.close();
  }
});

Deno.test("under egress any the same loopback URL is delivered (development receivers)", async () => {
  const h = await harness();
  try {
    const id = await h.subscribe(`http://127.0.0.1:${h.receiverPort}/hooks`);
    const { deliveryId, error } = await h.deliver(id, 1, { egress: "any" });
    assert.equal(error, undefined);
    assert.deepEqual(h.received, ["/hooks"]);
    assert.deepEqual((await attemptsOf(h.sql, deliveryId)).map((a) => a.outcome), ["DELIVERED"]);
  } finally {
    await h.close();
  }
});

Deno.test("a 302 from an allowed receiver is not followed: a failed attempt with HTTP 302, no request to its target", async () => {
  const h = await harness();
  try {
    const id = await h.subscribe(`http://127.0.0.1:${h.receiverPort}/redirect`);
    const { deliveryId, error } = await h.deliver(id, 1, { egress: "any" });
    assert.equal((error as Error)?.name, "DeliveryAttemptFailed", String(error));
    assert.deepEqual(h.received, ["/redirect"], "the Location was never requested");
    const [row] = await attemptsOf(h.sql, deliveryId);
    assert.deepEqual([row.outcome, row.http_status, row.error], ["FAILED", 302, "The endpoint answered HTTP 302"]);
  } finally {
    await h.close();
  }
});

Deno.test("resolving and the POST share one deadline: slow DNS plus a slow endpoint fail the attempt within deliveryTimeoutMs", async () => {
  const h = await harness();
  // fetch would ask the system resolver for the made-up name (the worker has no fetch seam): for this delivery only,
  // connect to the receiver instead, keeping the request and its abort signal as the worker made them.
  const realFetch = globalThis.fetch;
  try {
    // Each half takes 60 % of the budget: with a fresh timeout for the POST the attempt would last ~1.2 × T and
    // deliver; with one deadline the POST gets the 40 % left and times out at ~T.
    const deliveryTimeoutMs = 2_000;
    assert.equal(SLOW_ANSWER_MS, 0.6 * deliveryTimeoutMs);
    const resolved: string[] = [];
    const resolveHost: ResolveHost = (name) => {
      resolved.push(name);
      return new Promise((resolve) => setTimeout(() => resolve(["93.184.216.34"]), 0.6 * deliveryTimeoutMs));
    };
    globalThis.fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : input);
      url.hostname = "127.0.0.1";
      return realFetch(url, init);
    };
    const id = await h.subscribe(`http://hooks.partner.example:${h.receiverPort}/slow`);
    const started = performance.now();
    const { deliveryId, error } = await h.deliver(id, 1, { egress: "public", resolveHost, deliveryTimeoutMs });
    const elapsedMs = performance.now() - started;
    globalThis.fetch = realFetch;
    const [row] = await attemptsOf(h.sql, deliveryId);
    // Slack for timers and PGlite; a fresh timeout for the POST would end the attempt at ~2400 ms, delivered.
    assert.ok(row.duration_ms <= deliveryTimeoutMs + 150, `the attempt took ${row.duration_ms} ms`);
    assert.ok(elapsedMs <= deliveryTimeoutMs + 300, `the handler took ${Math.round(elapsedMs)} ms`);
    assert.deepEqual(resolved, ["hooks.partner.example"]);
    assert.deepEqual(h.received, ["/slow"], "the POST was sent after the check");
    // A timeout is a failed attempt, as before: the work queue moves the delivery to the next step.
    assert.equal((error as Error)?.name, "DeliveryAttemptFailed", String(error));
    assert.deepEqual([row.outcome, row.http_status, row.error], ["FAILED", null, "No answer within 2000 ms"]);
  } finally {
    globalThis.fetch = realFetch;
    await h.close();
  }
});
