/**
 * The notification protocol on the embedded adapters (PGlite, in-process log and cache): error frames and
 * close codes, limits, the ack window, idempotent storage, dead-lettering, and mounting on the service app.
 */
import assert from "node:assert/strict";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCreated, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import { createLifecycle, createServiceApp, withTimeout } from "../../../shared/runtime/mod.ts";
import type { Principal } from "../../../shared/auth/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { readDeadLetters } from "../../../shared/testing/dead_letters.ts";
import {
  connectWs,
  createdPayload,
  eventually,
  type Harness,
  isEvent,
  openSse,
  startHarness,
} from "./_fixture_for_test.ts";
import type { NotificationHub } from "./hub.ts";
import { CLOSE_CODES, DEFAULT_LIMITS, type NotificationLimits } from "./mod.ts";
import { OrderSocket } from "./order_socket.ts";

// One PGlite for the whole file (it takes seconds to boot); each test has its own service, log and cache.
let sharedSql: Promise<Sql> | undefined;

function embeddedTest(name: string, limits: Partial<NotificationLimits>, fn: (h: Harness) => Promise<void>) {
  Deno.test({
    name: `[pglite+memory] ${name}`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      sharedSql ??= createPgliteSql();
      const harness = await startHarness("embedded", { limits, sharedSql: await sharedSql });
      try {
        await fn(harness);
      } finally {
        await harness.close();
      }
    },
  });
}

embeddedTest("bad frames get error frames with stable codes and the connection stays up", {}, async (h) => {
  const client = await connectWs(h.wsUrl, await h.tokens.token("u-clumsy"));
  const expectError = async (send: () => void, code: string) => {
    send();
    const frame = await client.next();
    assert.equal(frame.type, "error", JSON.stringify(frame));
    assert.equal(frame.code, code, frame.message);
    return frame;
  };
  await expectError(() => client.sendRaw("{not json"), "COMMON.MALFORMED_JSON");
  await expectError(() => client.sendRaw(new Uint8Array([1, 2, 3])), "COMMON.MALFORMED_JSON");
  const unknown = await expectError(() => client.send({ type: "shout" }), "NOTIFICATIONS.UNKNOWN_TYPE");
  assert.match(unknown.message, /Unknown frame type "shout"; use one of subscribe, unsubscribe, ack, auth, ping/);
  await expectError(() => client.send(["subscribe"]), "NOTIFICATIONS.UNKNOWN_TYPE");
  await expectError(
    () => client.send({ type: "subscribe", orderId: "o-1", channel: "mine" }),
    "COMMON.VALIDATION_FAILED",
  );
  await expectError(() => client.send({ type: "subscribe", orderId: "o-1", extra: 1 }), "COMMON.VALIDATION_FAILED");
  await expectError(() => client.send({ type: "subscribe", orderId: "o-1", after: "-1" }), "COMMON.VALIDATION_FAILED");
  await expectError(() => client.send({ type: "unsubscribe", orderId: "o-1" }), "NOTIFICATIONS.UNKNOWN_SUBSCRIPTION");
  await expectError(() => client.send({ type: "ack", id: "99" }), "NOTIFICATIONS.UNKNOWN_EVENT");
  await expectError(() => client.send({ type: "auth", token: "forged" }), "AUTH.TOKEN_INVALID");
  client.send({ type: "subscribe", channel: "mine" });
  assert.equal((await client.next()).type, "subscribed");
  await expectError(() => client.send({ type: "subscribe", channel: "mine" }), "COMMON.CONFLICT");
  client.send({ type: "unsubscribe", channel: "mine" });
  assert.deepEqual(await client.next(), { type: "unsubscribed", channel: "mine" });
  client.send({ type: "ping" });
  assert.deepEqual(await client.next(), { type: "pong" });

  client.sendRaw(JSON.stringify({ type: "ping", pad: "x".repeat(DEFAULT_LIMITS.frameBytesMax) }));
  assert.equal((await client.closed).code, CLOSE_CODES.MESSAGE_TOO_BIG);
  await eventually("the socket released", () => h.notifications.stats().sockets === 0 ? true : undefined);
});

embeddedTest(
  "a token past its exp (inside the verifier's clock skew) opens nothing and replaces nothing",
  {},
  async (h) => {
    const stale = await h.tokens.token("u-late", ["CUSTOMER"], { ttlSec: -30 });
    const headers = { authorization: `Bearer ${stale}` };
    const refused = await fetch(h.wsUrl.replace("ws:", "http:"), { headers: { ...headers, upgrade: "websocket" } });
    assert.equal(refused.status, 401);
    assert.equal((await refused.json()).code, "AUTH.TOKEN_EXPIRED");
    const sse = await fetch(`${h.baseUrl}/sse/orders/o-late`, { headers });
    assert.equal(sse.status, 401);
    assert.equal((await sse.json()).code, "AUTH.TOKEN_EXPIRED");

    const client = await connectWs(h.wsUrl, await h.tokens.token("u-late"));
    const welcome = client.frames.find((frame) => frame.type === "welcome")!;
    client.send({ type: "auth", token: stale });
    const error = await client.next();
    assert.equal(error.type, "error");
    assert.equal(error.code, "AUTH.TOKEN_EXPIRED", error.message);
    // The connection keeps its current token: still open, still answering.
    client.send({ type: "ping" });
    assert.deepEqual(await client.next(), { type: "pong" });
    assert.ok(Date.parse(welcome.expiresAt) > Date.now());
    await client.close();
  },
);

embeddedTest(
  "subscriptions and sockets are bounded",
  { subscriptionsPerSocketMax: 2, socketsMax: 2 },
  async (h) => {
    const token = await h.tokens.token("u-greedy");
    const first = await connectWs(h.wsUrl, token);
    for (const orderId of ["o-1", "o-2"]) {
      first.send({ type: "subscribe", orderId });
      assert.equal((await first.next()).type, "subscribed");
    }
    first.send({ type: "subscribe", orderId: "o-3" });
    assert.equal((await first.next()).code, "NOTIFICATIONS.TOO_MANY_SUBSCRIPTIONS");
    const second = await connectWs(h.wsUrl, token);
    const refused = await fetch(h.wsUrl.replace("ws:", "http:"), {
      headers: { authorization: `Bearer ${token}`, upgrade: "websocket" },
    });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "5");
    assert.equal((await refused.json()).code, "COMMON.RATE_LIMITED");
    await Promise.all([first.close(), second.close()]);
    assert.equal(h.notifications.stats().subscriptions, 0);
  },
);

embeddedTest(
  "delivery pauses when the ack window is full and resumes after an ack",
  { unackedEventsMax: 2 },
  async (h) => {
    const userId = "u-acker";
    const client = await connectWs(h.wsUrl, await h.tokens.token(userId));
    client.send({ type: "subscribe", channel: "mine" });
    await client.next((f) => f.type === "subscribed");
    const orders = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    for (const orderId of orders) await h.publish(orderCreated, createdPayload(orderId, userId));
    const firstTwo = [await client.next(isEvent), await client.next(isEvent)];
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(client.all(isEvent).length, 2, "nothing beyond the window before an ack");
    client.send({ type: "ack", id: firstTwo[1].id });
    const all = [...firstTwo, await client.next(isEvent), await client.next(isEvent)];
    // Orders live on different partitions: the personal channel follows the order they were stored in.
    assert.deepEqual(new Set(all.map((f) => f.orderId)), new Set(orders));
    const ids = all.map((f) => BigInt(f.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => (a < b ? -1 : 1)), "ids increase");
    await client.close();
  },
);

embeddedTest("a redelivered event is stored and pushed once; a malformed record is dead-lettered", {}, async (h) => {
  const userId = "u-dup";
  const orderId = crypto.randomUUID();
  const client = await connectWs(h.wsUrl, await h.tokens.token(userId));
  client.send({ type: "subscribe", orderId });
  await client.next((f) => f.type === "subscribed");
  const { records: dead, close: closeDlq } = await readDeadLetters(h.eventLog, orderPaid.eventType);
  const envelope = createEnvelope(orderCreated, createdPayload(orderId, userId), {
    producer: "order-service",
    traceId: "0af7651916cd43dd8448eb211c80319c",
    correlationId: "c-dup",
  });
  const record = { key: orderId, value: JSON.stringify(envelope) };
  await h.eventLog.publish(orderCreated.eventType, [record, record]);
  await h.eventLog.publish(orderPaid.eventType, [{ key: orderId, value: '{"eventType":"nonsense"}' }]);
  await h.publish(orderPaid, { orderId, userId, amount: "10.00", currency: "EUR", authCode: "A" });
  const events = [await client.next(isEvent), await client.next(isEvent, 15_000)];
  assert.deepEqual(events.map((f) => [f.seq, f.status]), [[1, "PENDING"], [2, "PAID"]]);
  const rows = await h.sql.query`select count(*)::int as n from order_notifications where order_id = ${orderId}`;
  assert.equal(rows[0].n, 2);
  await eventually("the dead letter", () => dead.length > 0 ? true : undefined, 15_000);
  assert.match(dead[0].headers["x-bv-error"], /Not a valid order event/);
  await closeDlq();
  await client.close();
});

embeddedTest("the WebSocket route upgrades when mounted on the service app", {}, async (h) => {
  const app = createServiceApp({ name: "ecommerce-test", checks: {} });
  app.route("/", h.notifications.routes);
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  try {
    const userId = "u-mounted";
    const orderId = crypto.randomUUID();
    const client = await connectWs(`ws://127.0.0.1:${server.addr.port}/ws/orders`, await h.tokens.token(userId));
    client.send({ type: "subscribe", orderId });
    await client.next((f) => f.type === "subscribed");
    await h.publish(orderCreated, createdPayload(orderId, userId));
    assert.equal((await client.next(isEvent)).status, "PENDING");
    await client.close();
  } finally {
    await server.shutdown();
  }
});

embeddedTest("a stopping server ends /sse/orders streams with a last comment before its closers run", {}, async (h) => {
  const lifecycle = createLifecycle({ graceMs: 4_000, handleSignals: false });
  let streamsAtClose = -1;
  lifecycle.onStop("notifications", () => {
    streamsAtClose = h.notifications.stats().sseStreams;
    return Promise.resolve();
  });
  const app = createServiceApp({ name: "ecommerce-test", checks: {} });
  app.route("/", h.notifications.routes);
  const { port } = lifecycle.serve(app, { port: 0, hostname: "127.0.0.1", name: "ecommerce-test" });
  const userId = "u-draining";
  const orderId = crypto.randomUUID();
  await h.publish(orderCreated, createdPayload(orderId, userId));
  const client = await openSse(`http://127.0.0.1:${port}`, orderId, await h.tokens.token(userId));
  assert.equal((await client.next()).event, "order");

  const outcome = await lifecycle.stop("SIGTERM");
  await withTimeout(client.ended, 5_000, "The end of the stream");
  assert.deepEqual(client.comments.slice(-1), ["shutting down; reconnect with Last-Event-ID"]);
  assert.equal(client.events.filter((e) => e.event === "error").length, 0, "no error: the client just resumes");
  assert.equal(streamsAtClose, 0, "the stream ended on the shutdown signal, not in the closer");
  assert.equal(outcome.serversDrained, true);
});

/** An OrderSocket on a recording stand-in for the WebSocket (closes, released count), for unit tests of its bounds. */
function standaloneSocket(options: { bufferedAmount: number; sql?: Sql; hub?: NotificationHub }) {
  const closes: [number, string][] = [];
  const frames: string[] = [];
  const socket = {
    bufferedAmount: options.bufferedAmount,
    send: (text: string) => void frames.push(text),
    close: (code: number, reason: string) => closes.push([code, reason]),
  };
  const principal: Principal = {
    userId: "u",
    email: "u@x",
    roles: [],
    tokenId: "t",
    expiresAt: Date.now() / 1000 + 60,
  };
  const state = { closes, released: 0 };
  const connection = new OrderSocket({
    socket,
    principal,
    verifier: { verify: () => Promise.reject(new Error("unused")) },
    sql: options.sql ?? ({} as Sql),
    hub: options.hub ?? ({} as NotificationHub),
    limits: DEFAULT_LIMITS,
    onClosed: () => state.released++,
  });
  const sent = () => frames.map((text) => JSON.parse(text) as { type: string });
  return { connection, state, sent };
}

/** A stored order-created notification with stream id `id`, owned by "u". */
function createdNotification(id: number) {
  return {
    id: String(id),
    orderId: `o-${id}`,
    seq: 1,
    eventId: crypto.randomUUID(),
    eventType: orderCreated.eventType,
    status: "PENDING",
    occurredAt: new Date().toISOString(),
    userId: "u",
  };
}

Deno.test("a socket whose send buffer is over the limit is closed with 4429 instead of buffering", () => {
  const { connection, state } = standaloneSocket({ bufferedAmount: 2_000_000 });
  connection.deliver("mine", createdNotification(1));
  assert.equal(state.closes[0][0], CLOSE_CODES.SLOW_CONSUMER);
  assert.equal(state.released, 1);
  assert.equal(connection.canDeliver(), false);
});

Deno.test("a burst of acks for a burst of events keeps the socket open; a burst of subscribes is still bounded", async () => {
  let woken = 0;
  const { connection, state } = standaloneSocket({
    bufferedAmount: 0,
    // A subscribe waits on this query: never answered, so subscribes pile up in the frame queue.
    sql: { query: () => new Promise(() => {}) } as unknown as Sql,
    hub: { wake: () => woken++ } as unknown as NotificationHub,
  });
  const events = DEFAULT_LIMITS.unackedEventsMax;
  for (let i = 1; i <= events; i++) connection.deliver("mine", createdNotification(i));
  assert.equal(connection.canDeliver(), false, "the ack window is full");
  // The client acks every event as it arrives: all in one turn of the event loop, as a socket read delivers them.
  for (let i = 1; i <= events; i++) connection.receive(JSON.stringify({ type: "ack", id: String(i) }));
  assert.deepEqual(state.closes, [], "acks never count against the frames-in-flight bound");
  assert.equal(connection.canDeliver(), true, "the window opened");
  assert.equal(woken, 1, "the hub was told once that the socket takes more");
  // Frames that wait on something are still bounded.
  for (let i = 0; i <= DEFAULT_LIMITS.pendingFramesMax; i++) {
    connection.receive(JSON.stringify({ type: "subscribe", orderId: `o-${i}` }));
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(state.closes[0]?.[0], CLOSE_CODES.POLICY_VIOLATION);
});

Deno.test("acks and pings sent while a subscribe waits on the database are handled at once, not queued behind it", () => {
  let woken = 0;
  const { connection, state, sent } = standaloneSocket({
    bufferedAmount: 0,
    // The subscribe waits on this query: never answered, so it stays pending for the whole test.
    sql: { query: () => new Promise(() => {}) } as unknown as Sql,
    hub: { wake: () => woken++ } as unknown as NotificationHub,
  });
  const events = DEFAULT_LIMITS.unackedEventsMax;
  for (let i = 1; i <= events; i++) connection.deliver("mine", createdNotification(i));
  connection.receive(JSON.stringify({ type: "subscribe", orderId: "o-pending" }));
  // More acks than the frames-in-flight bound, all while the subscribe is pending.
  assert.ok(events > DEFAULT_LIMITS.pendingFramesMax);
  for (let i = 1; i <= events; i++) connection.receive(JSON.stringify({ type: "ack", id: String(i) }));
  connection.receive(JSON.stringify({ type: "ping" }));
  assert.deepEqual(state.closes, [], "no 1008 for acks behind a pending subscribe");
  assert.equal(connection.canDeliver(), true, "the acks opened the window at once");
  assert.equal(woken, 1);
  assert.equal(sent().filter((frame) => frame.type === "pong").length, 1, "the ping was answered at once");
});

Deno.test({
  name: "[pglite] close the shared database",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (sharedSql) await (await sharedSql).close();
  },
});
