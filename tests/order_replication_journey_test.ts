/**
 * Journey: `start:infra` runs each region on its own PostgreSQL cluster, east publishes the order tables
 * and west subscribes. An order created in east is readable in west (same user, same token: tokens are
 * verified against every region's keys) and the lag is measured; an order POST that reaches west is
 * forwarded to east, the writer, and comes back to west through replication. A customer served only by west
 * then browses a product created through west (authored in east), builds a cart, orders and pays, each read in
 * west right after the forwarded write it depends on. A sensor delta consumed in west is forwarded, signed with
 * the key start:infra gave every e-commerce process, to east, which applies it.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../shared/config/config.ts";
import { createKafkaEventLog } from "../shared/adapters/kafka/mod.ts";
import { createEnvelope } from "../shared/contracts/envelope.ts";
import { sensorDeltaReceived } from "../shared/contracts/events/sensors.ts";
import { prefixedEventLog } from "../shared/ports/prefixed_event_log.ts";
import { uniqueName } from "../shared/testing/unique.ts";
import { subscriptionState } from "../shared/adapters/postgres/replication.ts";
import { ORDER_WRITER_HEADER, REPLICA_WAIT_HEADER } from "../regional/ecommerce/orders/writer/mod.ts";
import { orderSubscriptionName, readWriterRoles } from "../scripts/postgres/order_replication.ts";
import { orderDatabasesOf } from "../scripts/postgres/infra_replication.ts";
import { call, dropIsolatedInfra, isolatedInfraEnv, JOURNEY_ADMIN, startPlatform } from "./support/platform.ts";

async function pollUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const started = performance.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test({
  name:
    "an order created in east is readable in west, a west POST is forwarded to east, a west-only customer checks out",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const id = uniqueName("bvrep");
    const env = isolatedInfraEnv(id, 11);
    const config = loadConfig(env);
    const dbs = orderDatabasesOf(config);
    const platform = await startPlatform("scripts/start_infra.ts", env);
    try {
      await platform.waitReady(120_000);
      // start:infra links the regions once every service has migrated (just after they turn ready).
      await pollUntil("replication set up", async () => {
        const state = await subscriptionState(dbs.west, orderSubscriptionName(dbs, "east")).catch(() => undefined);
        return state && state.tablesTotal > 0 && state.tablesReady === state.tablesTotal ? state : undefined;
      }, 60_000);
      assert.deepEqual(await readWriterRoles(dbs), {
        east: { writer: "east", epoch: 1 },
        west: { writer: "east", epoch: 1 },
      });

      const { east, west } = platform.ingressUrl;
      const admin = await call(`${east}/api/v1/auth/login`, { body: JOURNEY_ADMIN });
      assert.equal(admin.status, 200, JSON.stringify(admin.body));
      const product = await call(`${east}/api/v1/products`, {
        token: admin.body.accessToken,
        body: {
          sku: `REP-${id}`.toUpperCase(),
          name: "Replica Mug",
          description: "",
          category: "kitchen",
          price: "9.50",
          currency: "USD",
        },
      });
      assert.equal(product.status, 201, JSON.stringify(product.body));
      const productId = product.body.id;
      const stocked = await call(`${east}/api/v1/inventory/${productId}/adjustments`, {
        token: admin.body.accessToken,
        body: { delta: 50, reason: "initial stock" },
      });
      assert.equal(stocked.status, 200, JSON.stringify(stocked.body));
      const signup = await call(`${east}/api/v1/auth/signup`, {
        body: { email: `rep-${id}@journey.test`, password: "correct horse battery" },
      });
      assert.equal(signup.status, 201, JSON.stringify(signup.body));
      const token = signup.body.accessToken;

      // Written in east, read in west with the token east issued.
      const placed = await call(`${east}/api/v1/orders`, {
        token,
        body: { items: [{ productId, qty: 2 }] },
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      assert.equal(placed.status, 201, JSON.stringify(placed.body));
      const committedAt = performance.now();
      const seen = await pollUntil("order readable in west", async () => {
        const read = await call(`${west}/api/v1/orders/${placed.body.id}`, { token });
        if (read.status === 404) return undefined;
        assert.equal(read.status, 200, JSON.stringify(read.body));
        return read.body;
      }, 10_000);
      const lagMs = performance.now() - committedAt;
      console.log(`order ${placed.body.id}: 201 in east → readable in west after ${lagMs.toFixed(1)} ms`);
      assert.equal(seen.status, placed.body.status);
      assert.equal(seen.totalAmount, "19.00");
      assert.deepEqual(seen.items.map((i: { productId: string; qty: number }) => [i.productId, i.qty]), [[
        productId,
        2,
      ]]);

      // A write that reaches west goes to east (the writer) with its Idempotency-Key, then comes back.
      const key = crypto.randomUUID();
      const viaWest = await call(`${west}/api/v1/orders`, {
        token,
        body: { items: [{ productId, qty: 1 }] },
        headers: { "idempotency-key": key, "correlation-id": `rep-${id}` },
      });
      assert.equal(viaWest.status, 201, JSON.stringify(viaWest.body));
      assert.equal(viaWest.headers.get(ORDER_WRITER_HEADER), "east");
      const inEast = await call(`${east}/api/v1/orders/${viaWest.body.id}`, { token });
      assert.equal(inEast.status, 200, JSON.stringify(inEast.body));
      const replayed = await call(`${west}/api/v1/orders`, {
        token,
        body: { items: [{ productId, qty: 1 }] },
        headers: { "idempotency-key": key },
      });
      assert.equal(replayed.headers.get("idempotent-replayed"), "true");
      assert.equal(replayed.body.id, viaWest.body.id);
      await pollUntil("forwarded order back in west", async () => {
        const read = await call(`${west}/api/v1/orders/${viaWest.body.id}`, { token });
        return read.status === 200 ? read : undefined;
      }, 10_000);

      // A user who signs up through west: auth follows the order writer, so the account is made in east.
      const westUser = await call(`${west}/api/v1/auth/signup`, {
        body: { email: `rep-west-${id}@journey.test`, password: "correct horse battery" },
      });
      assert.equal(westUser.status, 201, JSON.stringify(westUser.body));
      assert.equal(westUser.headers.get(ORDER_WRITER_HEADER), "east");
      const westPlaced = await call(`${west}/api/v1/orders/${viaWest.body.id}/cancel`, {
        token: westUser.body.accessToken,
        body: {},
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      // Verified in east (not 401) and refused there: the order belongs to the other user.
      assert.equal(westPlaced.status, 404, JSON.stringify(westPlaced.body));
      assert.equal(westPlaced.headers.get(ORDER_WRITER_HEADER), "east");

      // A customer served entirely by west: every write below is forwarded to east, and every read is served
      // by west's copy right after it (the forwarder holds each answer until west has applied the write).
      const waits: number[] = [];
      const viaEast = (r: { status: number; headers: Headers; body: unknown }, expected: number) => {
        assert.equal(r.status, expected, JSON.stringify(r.body));
        assert.equal(r.headers.get(ORDER_WRITER_HEADER), "east");
        waits.push(Number(r.headers.get(REPLICA_WAIT_HEADER)));
      };
      const adminToken = admin.body.accessToken;
      const lamp = await call(`${west}/api/v1/products`, {
        token: adminToken,
        body: {
          sku: `REPW-${id}`.toUpperCase(),
          name: "West Lamp",
          category: "lighting",
          price: "12.00",
          currency: "USD",
        },
      });
      viaEast(lamp, 201);
      const browsed = await call(`${west}/api/v1/products/${lamp.body.id}`);
      assert.equal(browsed.status, 200, JSON.stringify(browsed.body));
      assert.equal(browsed.body.price, "12.00");
      const repriced = await call(`${west}/api/v1/products/${lamp.body.id}`, {
        method: "PATCH",
        token: adminToken,
        body: { price: "11.00" },
      });
      viaEast(repriced, 200);
      assert.equal((await call(`${west}/api/v1/products/${lamp.body.id}`)).body.price, "11.00");
      viaEast(
        await call(`${west}/api/v1/inventory/${lamp.body.id}/adjustments`, {
          token: adminToken,
          body: { delta: 5, reason: "west count" },
        }),
        200,
      );
      assert.equal((await call(`${west}/api/v1/inventory/${lamp.body.id}`)).body.available, 5);

      const buyer = westUser.body.accessToken;
      const cart = await call(`${west}/api/v1/carts`, { token: buyer, body: {} });
      viaEast(cart, 201);
      assert.equal((await call(`${west}/api/v1/carts/${cart.body.id}`, { token: buyer })).status, 200);
      viaEast(
        await call(`${west}/api/v1/carts/${cart.body.id}/items`, { token: buyer, body: { productId, qty: 1 } }),
        200,
      );
      viaEast(
        await call(`${west}/api/v1/carts/${cart.body.id}/items`, {
          token: buyer,
          body: { productId: lamp.body.id, qty: 2 },
        }),
        200,
      );
      viaEast(
        await call(`${west}/api/v1/carts/${cart.body.id}/items/${lamp.body.id}`, {
          method: "PUT",
          token: buyer,
          body: { qty: 3 },
        }),
        204,
      );
      viaEast(
        await call(`${west}/api/v1/carts/${cart.body.id}/items/${productId}`, { method: "DELETE", token: buyer }),
        204,
      );
      const inWestCart = await call(`${west}/api/v1/carts/${cart.body.id}`, { token: buyer });
      assert.deepEqual(inWestCart.body.items.map((l: { productId: string; qty: number }) => [l.productId, l.qty]), [[
        lamp.body.id,
        3,
      ]]);
      const order = await call(`${west}/api/v1/orders`, {
        token: buyer,
        body: { cartId: cart.body.id },
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      viaEast(order, 201);
      assert.equal(order.body.totalAmount, "33.00");
      const paid = await call(`${west}/api/v1/orders/${order.body.id}/pay`, {
        token: buyer,
        body: {},
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      viaEast(paid, 200);
      assert.equal(paid.body.status, "PAID");
      assert.equal((await call(`${west}/api/v1/orders/${order.body.id}`, { token: buyer })).body.status, "PAID");
      const stockInWest = await call(`${west}/api/v1/inventory/${lamp.body.id}`);
      assert.deepEqual([stockInWest.body.onHand, stockInWest.body.reserved], [5, 3]);
      console.log(
        `west customer: ${waits.length} forwarded writes; west caught up after ${
          waits.map((w) => w.toFixed(1)).join(", ")
        } ms`,
      );

      // A delta on west's Kafka reaches east only through west's consumer forwarding it, signed, to east.
      const onHandInEast = async () => (await call(`${east}/api/v1/inventory/${lamp.body.id}`)).body.onHand;
      const before = await onHandInEast();
      const westLog = prefixedEventLog(
        createKafkaEventLog({ brokers: [...config.regions.west.kafkaBrokers], clientId: `journey-${id}` }),
        config.BV_KAFKA_PREFIX,
      );
      try {
        const sku = `REPW-${id}`.toUpperCase();
        const delta = createEnvelope(
          sensorDeltaReceived,
          { messageId: `journey-${id}`, sku, delta: 7, reason: "SENSOR", receivedAt: new Date().toISOString() },
          { producer: "sensor-bridge", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: `rep-${id}` },
        );
        await westLog.publish(sensorDeltaReceived.eventType, [{ key: sku, value: JSON.stringify(delta) }]);
      } finally {
        await westLog.close();
      }
      await pollUntil("west's sensor delta applied in east", async () => {
        const onHand = await onHandInEast();
        return onHand === before + 7 ? onHand : undefined;
      }, 30_000);
    } finally {
      assert.equal(await platform.stop(), 0, await platform.tail());
      await dropIsolatedInfra(id);
    }
  },
});
