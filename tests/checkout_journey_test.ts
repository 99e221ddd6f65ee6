/**
 * Journey (seed 003 exit criteria) on the real services, through the edge: sign up → browse (REST and
 * GraphQL) → cart → order with an Idempotency-Key → stock reserved over gRPC → paid over SOAP → events on
 * Kafka in the envelope → fulfilled. Each step asserts what the user would see.
 */
import assert from "node:assert/strict";
import { realInfra } from "../shared/testing/real_infra.ts";
import { loadConfig } from "../shared/config/config.ts";
import { createPostgresSql } from "../shared/adapters/postgres/mod.ts";
import { uniqueName } from "../shared/testing/unique.ts";
import { type Envelope, parseEnvelope } from "../shared/contracts/envelope.ts";
import { call, dropIsolatedInfra, isolatedInfraEnv, JOURNEY_ADMIN, startPlatform } from "./support/platform.ts";
import { type KafkaProbe, probeKafka } from "./support/kafka_probe.ts";

const ORDER_TOPICS = [
  "ecommerce.order.order.created.v1",
  "ecommerce.order.order.paid.v1",
  "ecommerce.order.order.fulfilled.v1",
];
/** How long the probe must read nothing new before what reached Kafka counts as final. */
const PROBE_IDLE_MS = 2_000;
/** Bound on that wait: a journey's order events stop within seconds of its last request. */
const PROBE_SETTLE_MS_MAX = 20_000;

/**
 * Waits until `probe` has read no record for `idleMs`, so that a duplicate published after the awaited
 * events first appeared is read before the check. Kafka is real here, so the clock cannot be faked.
 */
async function untilProbeIdle(probe: KafkaProbe, idleMs: number, maxMs: number): Promise<void> {
  const startedMs = Date.now();
  let seen = probe.records.length;
  let lastNewMs = startedMs;
  while (Date.now() - lastNewMs < idleMs) {
    if (Date.now() - startedMs > maxMs) throw new Error(`The Kafka probe still read new records after ${maxMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (probe.records.length !== seen) [seen, lastNewMs] = [probe.records.length, Date.now()];
  }
}

/**
 * The envelopes on Kafka about `orderId`, one per record. Records are told apart by topic, partition and
 * offset: the probe reading one twice (a rebalance) is not a second publish, but the same event published
 * twice (same eventId, another offset) is.
 */
function orderEnvelopesOf(probe: KafkaProbe, orderId: string): Envelope[] {
  const byOffset = new Map(probe.records.map((r) => [`${r.topic}/${r.partition}/${r.offset}`, r]));
  return [...byOffset.values()].flatMap((record) => {
    const parsed = parseEnvelope(record.value);
    const ours = parsed.ok && (parsed.envelope.payload as { orderId?: string }).orderId === orderId;
    return ours ? [parsed.envelope] : [];
  });
}

Deno.test({
  name: "checkout journey: sign up, browse, cart, idempotent order, reserve (gRPC), pay (SOAP), Kafka events, fulfil",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const id = uniqueName("bvc");
    const env = isolatedInfraEnv(id, 3);
    const platform = await startPlatform("scripts/start_infra.ts", env);
    // The platform's topics carry its prefix (one namespace per run on the shared cluster).
    const probe = await probeKafka(realInfra.kafkaBrokers, ORDER_TOPICS.map((t) => `${env.BV_KAFKA_PREFIX}${t}`));
    try {
      await platform.waitReady(120_000);
      const edge = platform.edgeUrl;
      const admin = await call(`${edge}/api/v1/auth/login`, {
        body: { email: JOURNEY_ADMIN.email, password: JOURNEY_ADMIN.password },
      });
      assert.equal(
        admin.status,
        200,
        `admin login: ${JSON.stringify(admin.body)} x-bv-region=${admin.headers.get("x-bv-region")}\n${await platform
          .tail(60)}`,
      );
      const adminToken = admin.body.accessToken;

      // The catalog has a product with stock.
      const sku = `SKU-${id}`.toUpperCase();
      const product = await call(`${edge}/api/v1/products`, {
        token: adminToken,
        body: {
          sku,
          name: "Journey Lamp",
          description: "A lamp for journeys",
          category: "lighting",
          price: "25.00",
          currency: "USD",
        },
      });
      assert.equal(product.status, 201, JSON.stringify(product.body));
      const productId = product.body.id;
      const stocked = await call(`${edge}/api/v1/inventory/${productId}/adjustments`, {
        token: adminToken,
        body: { delta: 10, reason: "initial stock" },
      });
      assert.equal(stocked.status, 200, JSON.stringify(stocked.body));
      assert.equal(stocked.body.available, 10);

      // A customer signs up and browses.
      const signup = await call(`${edge}/api/v1/auth/signup`, {
        body: { email: `buyer-${id}@journey.test`, password: "correct horse battery" },
      });
      assert.equal(signup.status, 201);
      const token = signup.body.accessToken;
      const found = await call(`${edge}/api/v1/products?q=${encodeURIComponent("Journey Lamp")}`);
      assert.equal(found.status, 200);
      assert.ok(found.body.items.some((p: { id: string }) => p.id === productId));
      const fetched = await call(`${edge}/api/v1/products/${productId}`);
      assert.equal(fetched.body.price, "25.00");
      const gql = await call(`${edge}/graphql`, {
        body: { query: `{ productInventory(id: "${productId}") { productId sku available } }` },
      });
      assert.equal(gql.status, 200, JSON.stringify(gql.body));
      assert.deepEqual(gql.body.data.productInventory, { productId, sku, available: 10 });

      // Cart, then an order from it with an Idempotency-Key.
      const cart = await call(`${edge}/api/v1/carts`, { token, body: {} });
      assert.equal(cart.status, 201, JSON.stringify(cart.body));
      const added = await call(`${edge}/api/v1/carts/${cart.body.id}/items`, {
        token,
        body: { productId, qty: 2 },
      });
      assert.ok(added.status === 200 || added.status === 201, JSON.stringify(added.body));
      const key = crypto.randomUUID();
      const order = await call(`${edge}/api/v1/orders`, {
        token,
        body: { cartId: cart.body.id },
        headers: { "idempotency-key": key, "correlation-id": `journey-${id}` },
      });
      assert.equal(order.status, 201, JSON.stringify(order.body));
      assert.equal(order.body.status, "RESERVED");
      assert.equal(order.body.totalAmount, "50.00");
      const replay = await call(`${edge}/api/v1/orders`, {
        token,
        body: { cartId: cart.body.id },
        headers: { "idempotency-key": key },
      });
      assert.equal(replay.status, 201);
      assert.equal(replay.headers.get("idempotent-replayed"), "true");
      assert.deepEqual(replay.body, order.body);
      const orderId = order.body.id;
      const reserved = await call(`${edge}/api/v1/inventory/${productId}`);
      assert.deepEqual([reserved.body.reserved, reserved.body.available], [2, 8]);

      // Pay over the legacy SOAP gateway.
      const paid = await call(`${edge}/api/v1/orders/${orderId}/pay`, {
        token,
        body: {},
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      assert.equal(paid.status, 200, JSON.stringify(paid.body));
      assert.equal(paid.body.status, "PAID");

      // Fulfilment by an ADMIN.
      const fulfilled = await call(`${edge}/api/v1/orders/${orderId}/fulfill`, {
        token: adminToken,
        body: {},
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      assert.equal(fulfilled.status, 200, JSON.stringify(fulfilled.body));
      assert.equal(fulfilled.body.status, "FULFILLED");
      const after = await call(`${edge}/api/v1/inventory/${productId}`);
      assert.deepEqual([after.body.onHand, after.body.reserved, after.body.available], [8, 0, 8]);
      const mine = await call(`${edge}/api/v1/orders/${orderId}`, { token });
      assert.equal(mine.body.status, "FULFILLED");

      // Every lifecycle event reached Kafka once, in the envelope, keyed by the order, with our correlation id.
      await probe.waitFor(
        "created, paid and fulfilled",
        (all) =>
          ORDER_TOPICS.every((type) =>
            all.some((e) => e.eventType === type && (e.payload as { orderId: string }).orderId === orderId)
          ),
        30_000,
      ).catch(async (error) => {
        // Say where the events stopped: still in the outbox (relay), or published but not seen (consumer).
        const sql = createPostgresSql({ url: loadConfig(env).regions.east.pgUrl, maxConnections: 1 });
        try {
          const rows = await sql.query`
            select topic, count(*)::int as n, count(*) filter (where published_at is null)::int as unpublished
            from outbox group by topic order by topic`;
          throw new Error(
            `${error.message}; outbox: ${JSON.stringify(rows)}; probe saw ${probe.records.length} records`,
          );
        } finally {
          await sql.close();
        }
      });
      // The first moment all three are there says nothing about a duplicate coming later: read on until idle.
      await untilProbeIdle(probe, PROBE_IDLE_MS, PROBE_SETTLE_MS_MAX);
      const ours = orderEnvelopesOf(probe, orderId);
      const times = Object.fromEntries(
        ORDER_TOPICS.map((type) => [type, ours.filter((e) => e.eventType === type).length]),
      );
      assert.deepEqual(times, Object.fromEntries(ORDER_TOPICS.map((type) => [type, 1])), "each order event once");
      assert.deepEqual(ours.map((e) => e.eventType), ORDER_TOPICS, "in lifecycle order");
      for (const envelope of ours) {
        assert.equal(envelope.partitionKey, orderId);
        assert.equal(envelope.schemaVersion, "1.0");
      }
      assert.equal(ours[0].correlationId, `journey-${id}`);
      assert.equal((ours[0].payload as { totalAmount: string }).totalAmount, "50.00");
    } finally {
      await probe.close();
      assert.equal(await platform.stop(), 0, await platform.tail());
      await dropIsolatedInfra(id);
    }
  },
});
