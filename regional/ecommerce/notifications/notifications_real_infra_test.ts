/**
 * Order notifications end to end on real PostgreSQL, Redis and Kafka: order events published on the order
 * topics reach WebSocket and SSE clients in order, and both resume after a reconnect without a gap or a
 * duplicate.
 */
import assert from "node:assert/strict";
import { orderCreated, orderFulfilled, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import {
  connectWs,
  createdPayload,
  eventually,
  type Harness,
  isEvent,
  openSse,
  paidPayload,
  startHarness,
} from "./_fixture_for_test.ts";
import { CLOSE_CODES, orderStatusKey } from "./mod.ts";

function realInfraTest(name: string, fn: (h: Harness) => Promise<void>) {
  Deno.test({
    name: `[postgres+kafka+redis] ${name}`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const harness = await startHarness("real", { heartbeatMs: 200 });
      try {
        await fn(harness);
      } finally {
        await harness.close();
      }
    },
  });
}

realInfraTest(
  "a WebSocket client gets an order's status changes in order and resumes without gap or duplicate",
  async (h) => {
    const userId = `u-${crypto.randomUUID()}`;
    const orderId = crypto.randomUUID();
    const token = await h.tokens.token(userId);
    const first = await connectWs(h.wsUrl, token, "header");
    first.send({ type: "subscribe", orderId });
    assert.deepEqual(await first.next((f) => f.type === "subscribed"), {
      type: "subscribed",
      channel: `order:${orderId}`,
      status: null,
      after: "0",
    });
    await h.publish(orderCreated, createdPayload(orderId, userId));
    await h.publish(orderPaid, paidPayload(orderId, userId));
    const live = [await first.next(isEvent), await first.next(isEvent)];
    assert.deepEqual(live.map((f) => [f.channel, f.seq, f.status]), [
      [`order:${orderId}`, 1, "PENDING"],
      [`order:${orderId}`, 2, "PAID"],
    ]);
    assert.ok(BigInt(live[1].id) > BigInt(live[0].id), "ids increase");
    const cached = await eventually("order_status PAID", async () => {
      const text = await h.cache.get(orderStatusKey(orderId));
      return text && JSON.parse(text).status === "PAID" ? JSON.parse(text) : undefined;
    });
    assert.equal(cached.id, live[1].id);
    first.send({ type: "ack", id: live[1].id });
    await first.close();

    // While the client is away the order is fulfilled; a browser client reconnects with the query token.
    await h.publish(orderFulfilled, { orderId, userId });
    await eventually(
      "order_status removed on fulfilment",
      async () => (await h.cache.get(orderStatusKey(orderId))) === null ? true : undefined,
    );
    const second = await connectWs(h.wsUrl, token, "query");
    second.send({ type: "subscribe", orderId, after: live[1].id });
    const subscribed = await second.next((f) => f.type === "subscribed");
    assert.equal(subscribed.status, "FULFILLED");
    const resumed = await second.next(isEvent);
    assert.deepEqual([resumed.seq, resumed.status, resumed.eventType], [3, "FULFILLED", orderFulfilled.eventType]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(second.all(isEvent).length, 1, "nothing before the resume point is sent again");
    await second.close();
  },
);

realInfraTest("paid published immediately before created still reaches the client after PENDING", async (h) => {
  const userId = `u-${crypto.randomUUID()}`;
  const orderId = crypto.randomUUID();
  const client = await connectWs(h.wsUrl, await h.tokens.token(userId));
  client.send({ type: "subscribe", orderId });
  await client.next((f) => f.type === "subscribed");
  // Reverse lifecycle order, back to back: the consumer sees fulfilled and paid before their predecessors.
  await h.publish(orderFulfilled, { orderId, userId });
  await h.publish(orderPaid, paidPayload(orderId, userId));
  await h.publish(orderCreated, createdPayload(orderId, userId));
  const live = [await client.next(isEvent), await client.next(isEvent), await client.next(isEvent)];
  assert.deepEqual(live.map((f) => [f.seq, f.status]), [[1, "PENDING"], [2, "PAID"], [3, "FULFILLED"]]);
  const rows = await h.sql.query<{ status: string }>`
    select status from order_notifications where order_id = ${orderId} order by id`;
  assert.deepEqual(rows.map((r) => r.status), ["PENDING", "PAID", "FULFILLED"]);
  await eventually(
    "order_status removed on fulfilment",
    async () => (await h.cache.get(orderStatusKey(orderId))) === null ? true : undefined,
  );
  await client.close();
});

realInfraTest("the personal channel carries every order of the user and resumes across orders", async (h) => {
  const userId = `u-${crypto.randomUUID()}`;
  const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
  const token = await h.tokens.token(userId);
  const client = await connectWs(h.wsUrl, token);
  client.send({ type: "subscribe", channel: "mine" });
  await client.next((f) => f.type === "subscribed");
  await h.publish(orderCreated, createdPayload(a, userId));
  const got = [await client.next(isEvent)];
  await h.publish(orderCreated, createdPayload(b, userId));
  got.push(await client.next(isEvent));
  assert.deepEqual(got.map((f) => [f.channel, f.orderId, f.status]), [["mine", a, "PENDING"], ["mine", b, "PENDING"]]);
  await client.close();

  await h.publish(orderPaid, paidPayload(a, userId));
  await h.publish(orderPaid, paidPayload(b, userId));
  const again = await connectWs(h.wsUrl, token);
  again.send({ type: "subscribe", channel: "mine", after: got[1].id });
  const resumed = [await again.next(isEvent), await again.next(isEvent)];
  assert.deepEqual(resumed.map((f) => f.status), ["PAID", "PAID"]);
  assert.deepEqual(new Set(resumed.map((f) => f.orderId)), new Set([a, b]));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(again.all(isEvent).length, 2);
  await again.close();
});

realInfraTest("an SSE client gets status changes in order, heartbeats, and resumes with Last-Event-ID", async (h) => {
  const userId = `u-${crypto.randomUUID()}`;
  const orderId = crypto.randomUUID();
  const token = await h.tokens.token(userId);
  const first = await openSse(h.baseUrl, orderId, token);
  assert.equal(first.status, 200);
  await h.publish(orderCreated, createdPayload(orderId, userId));
  await h.publish(orderPaid, paidPayload(orderId, userId));
  const live = [await first.next(), await first.next()];
  assert.deepEqual(live.map((e) => [e.event, JSON.parse(e.data).status]), [["order", "PENDING"], ["order", "PAID"]]);
  assert.equal(live[1].id, JSON.parse(live[1].data).id);
  await eventually("a heartbeat comment", () => first.comments.includes("heartbeat") ? true : undefined);
  await first.close();

  await h.publish(orderFulfilled, { orderId, userId });
  const second = await openSse(h.baseUrl, orderId, token, live[1].id);
  const resumed = await second.next();
  assert.equal(JSON.parse(resumed.data).status, "FULFILLED");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(second.events.length, 1, "no duplicate after Last-Event-ID");
  await second.close();
});

realInfraTest("an SSE disconnect frees its subscription within 5 s", async (h) => {
  const token = await h.tokens.token("u-leaver");
  const before = h.notifications.stats().subscriptions;
  const client = await openSse(h.baseUrl, crypto.randomUUID(), token);
  await eventually(
    "the stream's subscription",
    () => h.notifications.stats().subscriptions === before + 1 ? true : undefined,
  );
  const closedAt = Date.now();
  await client.close();
  await eventually(
    "the subscription freed",
    () =>
      h.notifications.stats().subscriptions === before && h.notifications.stats().sseStreams === 0 ? true : undefined,
    5_000,
  );
  assert.ok(Date.now() - closedAt < 5_000);
});

realInfraTest("a missing or invalid token is refused with 401 before the upgrade", async (h) => {
  for (const headers of [{}, { authorization: "Bearer not-a-jwt" }] as Record<string, string>[]) {
    const response = await fetch(h.wsUrl.replace("ws:", "http:"), {
      headers: { ...headers, upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13" },
    });
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("content-type"), "application/problem+json");
    assert.match((await response.json()).code, /^AUTH\./);
  }
  await assert.rejects(connectWs(h.wsUrl, null), /connection failed/);
  const sse = await fetch(`${h.baseUrl}/sse/orders/${crypto.randomUUID()}?access_token=forged`);
  assert.equal(sse.status, 401);
  assert.equal((await sse.json()).code, "AUTH.TOKEN_INVALID");
});

realInfraTest("an expired token closes the socket with 4401 unless the client re-authenticates", async (h) => {
  const shortLived = await h.tokens.token("u-expiring", ["CUSTOMER"], { ttlSec: 2 });
  const doomed = await connectWs(h.wsUrl, shortLived);
  const kept = await connectWs(h.wsUrl, shortLived);
  kept.send({ type: "auth", token: await h.tokens.token("u-expiring") });
  assert.equal((await kept.next((f) => f.type !== "pong")).type, "authenticated");
  const closed = await Promise.race([doomed.closed, new Promise((r) => setTimeout(() => r("timeout"), 6_000))]);
  assert.deepEqual(closed, {
    code: CLOSE_CODES.TOKEN_EXPIRED,
    reason: "The access token expired; reconnect with a fresh token",
  });
  kept.send({ type: "ping" });
  assert.equal((await kept.next()).type, "pong", "the re-authenticated socket stays open past the first expiry");
  await kept.close();
});

realInfraTest("another user's order gets an error frame or a 404, never data", async (h) => {
  const owner = `u-${crypto.randomUUID()}`;
  const orderId = crypto.randomUUID();
  const pendingOrderId = crypto.randomUUID();
  await h.publish(orderCreated, createdPayload(orderId, owner));
  const ownerSocket = await connectWs(h.wsUrl, await h.tokens.token(owner));
  ownerSocket.send({ type: "subscribe", orderId });
  await ownerSocket.next(isEvent);

  const stranger = await connectWs(h.wsUrl, await h.tokens.token("u-stranger"));
  stranger.send({ type: "subscribe", orderId });
  assert.deepEqual(await stranger.next(), {
    type: "error",
    code: "ECOMMERCE.ORDER_NOT_FOUND",
    message: `Order "${orderId}" was not found`,
    channel: `order:${orderId}`,
  });
  // Subscribed before the order exists: the first event shows it is someone else's, so an error, not data.
  stranger.send({ type: "subscribe", orderId: pendingOrderId });
  assert.equal((await stranger.next()).type, "subscribed");
  await h.publish(orderCreated, createdPayload(pendingOrderId, owner));
  assert.equal((await stranger.next()).code, "ECOMMERCE.ORDER_NOT_FOUND");
  await h.publish(orderPaid, paidPayload(orderId, owner));
  await ownerSocket.next(isEvent);
  assert.equal(stranger.all(isEvent).length, 0);

  const admin = await connectWs(h.wsUrl, await h.tokens.token("u-admin", ["ADMIN"]));
  admin.send({ type: "subscribe", orderId });
  assert.deepEqual([(await admin.next(isEvent)).status, (await admin.next(isEvent)).status], ["PENDING", "PAID"]);

  const sse = await fetch(`${h.baseUrl}/sse/orders/${orderId}`, {
    headers: { authorization: `Bearer ${await h.tokens.token("u-stranger")}` },
  });
  assert.equal(sse.status, 404);
  assert.equal((await sse.json()).code, "ECOMMERCE.ORDER_NOT_FOUND");
  await Promise.all([ownerSocket.close(), stranger.close(), admin.close()]);
});
