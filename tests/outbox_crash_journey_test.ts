/**
 * Journey: the e-commerce process dies between the database commit and the Kafka publish. Kafka is down
 * while orders are placed (so the committed events wait in the outbox), the process is SIGKILLed, Kafka
 * comes back, the process restarts: every event is published, none is lost, and no side effect repeats
 * (each order exists once, stock is reserved once, and the events carry one eventId per order).
 */
import assert from "node:assert/strict";
import { loadConfig } from "../shared/config/config.ts";
import { realInfra } from "../shared/testing/real_infra.ts";
import { uniqueName } from "../shared/testing/unique.ts";
import { dropDatabase, ensureDatabase } from "../shared/testing/pg_database.ts";
import { dropVhost, ensureVhost } from "../shared/testing/rabbit_vhost.ts";
import { ensureKafka } from "../scripts/kafka/mod.ts";
import { killKafka } from "./support/kafka_chaos.ts";
import { call, journeyEnv, startPlatform } from "./support/platform.ts";
import { probeKafka } from "./support/kafka_probe.ts";

Deno.test({
  name: "a crash between the outbox commit and the Kafka publish loses no event and repeats no side effect",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const id = uniqueName("bvo");
    const env = {
      ...journeyEnv(4, {
        BV_EAST_PG_DATABASE: `${id}_east`,
        BV_EAST_AMQP_VHOST: `${id}_east`,
        BV_REDIS_PREFIX: `${id}:`,
        BV_KAFKA_PREFIX: `${id}.`,
        BV_ADMIN_EMAIL: "root@journey.test",
        BV_ADMIN_PASSWORD: "journey-admin-pass",
      }),
      BV_MODE: "infra",
      BV_REGION: "east",
    };
    const config = loadConfig(env);
    await ensureDatabase(config.BV_PG_URL, `${id}_east`);
    await ensureVhost(`${id}_east`);
    const security = await startPlatform("regional/security/main.ts", env, ["security-east"]);
    let ecommerce = await startPlatform("regional/ecommerce/main.ts", env, ["ecommerce-east"]);
    const services = `http://127.0.0.1`;
    const ecommerceUrl = `${services}:${config.regions.east.servicePorts.ecommerce}`;
    const securityUrl = `${services}:${config.regions.east.servicePorts.security}`;
    try {
      await Promise.all([security.waitReady(60_000), ecommerce.waitReady(60_000)]);
      const admin = await call(`${securityUrl}/api/v1/auth/login`, {
        body: { email: "root@journey.test", password: "journey-admin-pass" },
      });
      const adminToken = admin.body.accessToken;
      const buyer = await call(`${securityUrl}/api/v1/auth/signup`, {
        body: { email: `crash-${id}@journey.test`, password: "correct horse battery" },
      });
      const token = buyer.body.accessToken;
      const product = await call(`${ecommerceUrl}/api/v1/products`, {
        token: adminToken,
        body: {
          sku: `CRASH-${id}`.toUpperCase(),
          name: "Crash Cup",
          description: "",
          category: "kitchen",
          price: "3.50",
          currency: "EUR",
        },
      });
      assert.equal(product.status, 201, JSON.stringify(product.body));
      const productId = product.body.id;
      assert.equal(
        (await call(`${ecommerceUrl}/api/v1/inventory/${productId}/adjustments`, {
          token: adminToken,
          body: { delta: 20, reason: "initial" },
        })).status,
        200,
      );

      // Kafka goes away: orders still commit (state + outbox rows), but nothing can be published.
      await killKafka("east");
      const orderIds: string[] = [];
      for (let i = 0; i < 5; i++) {
        const order = await call(`${ecommerceUrl}/api/v1/orders`, {
          token,
          body: { items: [{ productId, qty: 1 }] },
          headers: { "idempotency-key": `${id}-${i}` },
        });
        assert.equal(order.status, 201, JSON.stringify(order.body));
        orderIds.push(order.body.id);
      }
      // The process dies with the events committed but unpublished.
      await ecommerce.crash();
      await ensureKafka("east");
      ecommerce = await startPlatform("regional/ecommerce/main.ts", env, ["ecommerce-east"]);
      await ecommerce.waitReady(60_000);

      const probe = await probeKafka(realInfra.kafkaBrokers, [`${id}.ecommerce.order.order.created.v1`]);
      try {
        const envelopes = await probe.waitFor(
          "every order.created",
          (all) => orderIds.every((orderId) => all.some((e) => (e.payload as { orderId: string }).orderId === orderId)),
          30_000,
        );
        const ours = envelopes.filter((e) => orderIds.includes((e.payload as { orderId: string }).orderId));
        // At-least-once on the wire, exactly once in meaning: one eventId per order.
        const eventIdsByOrder = new Map<string, Set<string>>();
        for (const e of ours) {
          const orderId = (e.payload as { orderId: string }).orderId;
          eventIdsByOrder.set(orderId, (eventIdsByOrder.get(orderId) ?? new Set()).add(e.eventId));
        }
        assert.equal(eventIdsByOrder.size, orderIds.length);
        for (const ids of eventIdsByOrder.values()) assert.equal(ids.size, 1);
      } finally {
        await probe.close();
      }
      // No side effect repeated: each order exists once and stock was reserved once per order.
      const stock = await call(`${ecommerceUrl}/api/v1/inventory/${productId}`);
      assert.deepEqual([stock.body.onHand, stock.body.reserved], [20, 5]);
      const replay = await call(`${ecommerceUrl}/api/v1/orders`, {
        token,
        body: { items: [{ productId, qty: 1 }] },
        headers: { "idempotency-key": `${id}-0` },
      });
      assert.equal(replay.body.id, orderIds[0], "a retried request after the crash does not create a second order");
      assert.equal((await call(`${ecommerceUrl}/api/v1/inventory/${productId}`)).body.reserved, 5);
    } finally {
      await ensureKafka("east").catch(() => {});
      await ecommerce.stop();
      await security.stop();
      await dropDatabase(realInfra.postgresAdminUrl, `${id}_east`).catch(() => {});
      await dropVhost(`${id}_east`).catch(() => {});
    }
  },
});
