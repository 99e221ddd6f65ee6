/**
 * Fast tests on PGlite and the in-process event log and work queue: the subscriptions API, signing that
 * the partner kit accepts, rotation, and secrets sealed at rest.
 */
import assert from "node:assert/strict";
import { createMemoryEventLog, createMemoryWorkQueue } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCreated, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import { waitFor } from "../../../shared/ports/contract/_wait_for.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { verifyWebhook } from "../../../partner-kit/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { startTestReceiver } from "./_test_receiver.ts";
import { startWebhooks, type WebhookEgress, webhooksMigrations } from "./mod.ts";

const SECRETS_KEY = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
const trace = { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "c-1" };

/** `egress` is `any` unless a test is about the policy: the test receiver listens on loopback. */
async function setup(egress: WebhookEgress = "any") {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...webhooksMigrations]);
  const eventLog = createMemoryEventLog();
  const queue = createMemoryWorkQueue();
  const tokens = await createTestTokens();
  const webhooks = await startWebhooks({
    sql,
    eventLog,
    queue,
    verifier: tokens.verifier,
    nudgeOutbox: () => {},
    region: "test",
    retryDelaysMs: [50, 100],
    deliveryTimeoutMs: 2_000,
    secretsKey: SECRETS_KEY,
    egress,
  });
  await webhooks.ready;
  const receiver = startTestReceiver();
  const partner = await tokens.token("partner-1", ["PARTNER"]);
  const call = (method: string, path: string, token: string | undefined, body?: unknown) =>
    webhooks.routes.request(path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  return {
    sql,
    eventLog,
    tokens,
    receiver,
    partner,
    call,
    close: async () => {
      await webhooks.close();
      await receiver.close();
      await queue.close();
      await eventLog.close();
      await sql.close();
    },
  };
}

Deno.test({
  name: "subscriptions API: PARTNER only, validated, secret shown once, own subscriptions only",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await setup();
    try {
      const path = "/api/v1/webhooks/subscriptions";
      const body = { url: "https://partner.example/hooks", events: [orderCreated.eventType] };
      assert.equal((await t.call("POST", path, undefined, body)).status, 401);
      const customer = await t.tokens.token("c-1", ["CUSTOMER"]);
      assert.equal((await t.call("POST", path, customer, body)).status, 403);
      for (
        const bad of [
          { ...body, url: "ftp://partner.example/x" },
          { ...body, url: "https://user:pw@partner.example/x" },
          { ...body, events: ["ecommerce.order.order.exploded.v1"] },
          { ...body, events: [] },
          { ...body, extra: 1 },
        ]
      ) {
        const response = await t.call("POST", path, t.partner, bad);
        assert.equal(response.status, 400, JSON.stringify(bad));
        assert.equal(response.headers.get("content-type"), "application/problem+json");
        assert.equal((await response.json()).code, "COMMON.VALIDATION_FAILED");
      }

      const created = await t.call("POST", path, t.partner, body);
      assert.equal(created.status, 201);
      const { id, secret, ...view } = await created.json();
      assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
      assert.deepEqual(view.events, [orderCreated.eventType]);
      assert.equal(view.status, "ACTIVE");

      const read = await (await t.call("GET", `${path}/${id}`, t.partner)).json();
      assert.equal(read.secret, undefined, "the secret is shown only once");
      const list = await (await t.call("GET", path, t.partner)).json();
      assert.deepEqual(list.items.map((s: { id: string }) => s.id), [id]);
      assert.ok(!JSON.stringify(list).includes(secret));
      const [stored] = await t.sql.query<{ secret: string }>`select secret from webhook_subscriptions where id = ${id}`;
      assert.match(stored.secret, /^aesgcm:v1:/, "sealed at rest");
      assert.ok(!stored.secret.includes(secret.slice(6)));

      const other = await t.tokens.token("partner-2", ["PARTNER"]);
      assert.equal((await t.call("GET", `${path}/${id}`, other)).status, 404);
      assert.equal((await t.call("DELETE", `${path}/${id}`, other)).status, 404);
      assert.equal((await t.call("POST", `${path}/${id}/rotate-secret`, other)).status, 404);
      assert.deepEqual((await (await t.call("GET", path, other)).json()).items, []);

      const rotated = await (await t.call("POST", `${path}/${id}/rotate-secret`, t.partner)).json();
      assert.match(rotated.secret, /^whsec_/);
      assert.notEqual(rotated.secret, secret);
      assert.ok(Date.parse(rotated.previousSecretExpiresAt) > Date.now());

      assert.equal((await t.call("DELETE", `${path}/${id}`, t.partner)).status, 204);
      assert.equal((await t.call("GET", `${path}/${id}`, t.partner)).status, 404);
      assert.equal((await t.call("GET", `${path}/not-a-uuid`, t.partner)).status, 404);
    } finally {
      await t.close();
    }
  },
});

Deno.test({
  name: "subscriptions API: a URL with a control character, a lone surrogate or port 0 is 400, never a 500",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await setup();
    try {
      const path = "/api/v1/webhooks/subscriptions";
      for (
        const url of [
          "https://partner.example/hooks?a=\u0000",
          "https://partner.example/\u0000",
          "https://partner.example/a\tb",
          "https://partner.example/\u007f",
          "https://partner.example/\ud800",
          "https://partner.example:0/x",
        ]
      ) {
        const response = await t.call("POST", path, t.partner, { url, events: [orderCreated.eventType] });
        assert.equal(response.status, 400, JSON.stringify(url));
        assert.equal(response.headers.get("content-type"), "application/problem+json");
        const problem = await response.json();
        assert.equal(problem.code, "COMMON.VALIDATION_FAILED");
        assert.deepEqual(problem.errors.map((e: { path: string }) => e.path), ["url"]);
      }
      const [{ n }] = await t.sql.query<{ n: number }>`select count(*)::int as n from webhook_subscriptions`;
      assert.equal(n, 0, "nothing stored");
    } finally {
      await t.close();
    }
  },
});

Deno.test({
  name: "subscriptions API under egress public: loopback, private and metadata URLs are refused with 400",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await setup("public");
    try {
      const path = "/api/v1/webhooks/subscriptions";
      for (
        const url of [
          "http://127.0.0.1:8110/api/v1/orders",
          "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
          "http://[::1]/hooks",
          "http://10.0.0.5/hooks",
          "https://192.168.1.20/hooks",
          "http://[::ffff:127.0.0.1]:8080/hooks",
          // WHATWG URL parsing turns these into 127.0.0.1 and 0.0.0.0: they are judged as what fetch would dial.
          "http://2130706433/hooks",
          "http://0x7f.1/hooks",
          "http://0/hooks",
          "http://localhost:8080/hooks",
          "http://api.LOCALHOST./hooks",
          "http://[fd00::5]/hooks",
        ]
      ) {
        const response = await t.call("POST", path, t.partner, { url, events: [orderCreated.eventType] });
        assert.equal(response.status, 400, url);
        assert.equal(response.headers.get("content-type"), "application/problem+json");
        const problem = await response.json();
        assert.equal(problem.code, "ECOMMERCE.WEBHOOK_DESTINATION_NOT_ALLOWED", url);
        assert.match(problem.detail, /BV_WEBHOOK_EGRESS=public/, url);
        assert.deepEqual(problem.errors.map((e: { path: string }) => e.path), ["url"]);
      }
      assert.deepEqual((await (await t.call("GET", path, t.partner)).json()).items, [], "nothing was stored");
      // Names are not resolved at subscribe time (DNS can change): a public-looking name is accepted here and
      // checked at each delivery; a public IP literal is accepted as it is.
      for (
        const url of ["https://hooks.partner.example/bv", "http://93.184.216.34/hooks", "https://[2606:4700::1111]/"]
      ) {
        const response = await t.call("POST", path, t.partner, { url, events: [orderCreated.eventType] });
        assert.equal(response.status, 201, url);
      }
    } finally {
      await t.close();
    }
  },
});

Deno.test({
  name: "deliveries verify with the partner kit, with either secret during a rotation",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await setup();
    try {
      const behaviour = { secrets: [] as string[] };
      const url = t.receiver.route("/hooks", behaviour);
      const created = await (await t.call("POST", "/api/v1/webhooks/subscriptions", t.partner, {
        url,
        events: [orderCreated.eventType],
      })).json();
      behaviour.secrets = [created.secret];

      const first = createEnvelope(orderCreated, {
        orderId: "o-1",
        userId: "u-1",
        totalAmount: "129.50",
        currency: "USD",
        items: [{ productId: "p-1", qty: 2, price: "64.75" }],
      }, trace);
      // Not subscribed to: never delivered.
      const paid = createEnvelope(orderPaid, {
        orderId: "o-1",
        userId: "u-1",
        amount: "129.50",
        currency: "USD",
        authCode: "A1",
      }, trace);
      await t.eventLog.publish(paid.eventType, [{ key: "o-1", value: JSON.stringify(paid) }]);
      await t.eventLog.publish(first.eventType, [{ key: "o-1", value: JSON.stringify(first) }]);
      await waitFor("the first delivery", () => t.receiver.forEvent("/hooks", first.eventId).length === 1);
      const [delivery] = t.receiver.forEvent("/hooks", first.eventId);
      assert.equal(delivery.verified, true, delivery.reason ?? "");
      assert.equal(delivery.status, 204);
      const body = JSON.parse(delivery.body);
      assert.equal(body.type, orderCreated.eventType);
      assert.equal(body.data.totalAmount, "129.50");
      assert.match(delivery.headers.get("x-bv-signature")!, /^t=\d+,v1=[0-9a-f]{64}$/);
      assert.match(delivery.headers.get("webhook-signature")!, /^v1,[A-Za-z0-9+/]{43}=$/);

      // A forged body (or a replay with another payload) fails verification with a clear reason.
      const forged = await verifyWebhook({
        headers: delivery.headers,
        body: delivery.body.replace("129.50", "0.01"),
        secrets: [created.secret],
      });
      assert.equal(!forged.ok && forged.code, "NO_MATCHING_SIGNATURE");

      const rotated =
        await (await t.call("POST", `/api/v1/webhooks/subscriptions/${created.id}/rotate-secret`, t.partner))
          .json();
      // The partner has deployed only the OLD secret so far: deliveries still verify.
      const second = createEnvelope(orderCreated, { ...first.payload, orderId: "o-2" }, trace);
      await t.eventLog.publish(second.eventType, [{ key: "o-2", value: JSON.stringify(second) }]);
      await waitFor("the second delivery", () => t.receiver.forEvent("/hooks", second.eventId).length === 1);
      const [during] = t.receiver.forEvent("/hooks", second.eventId);
      assert.equal(during.verified, true, during.reason ?? "");
      assert.equal(during.headers.get("webhook-signature")!.split(" ").length, 2, "signed with both secrets");
      for (const secrets of [[created.secret], [rotated.secret]]) {
        const result = await verifyWebhook({ headers: during.headers, body: during.body, secrets });
        assert.equal(result.ok, true);
      }
      // The row is written after the receiver answered: wait for it rather than race it.
      await waitFor("both attempts recorded as delivered", async () => {
        const [attempts] = await t.sql.query<{ n: number }>`
          select count(*)::int as n from webhook_delivery_attempts where outcome = 'DELIVERED'`;
        return attempts.n === 2;
      });
      assert.equal(t.receiver.requests.filter((r) => r.eventId === paid.eventId).length, 0);
    } finally {
      await t.close();
    }
  },
});
