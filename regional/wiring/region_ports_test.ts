/**
 * The embedded ports keep what the platform acknowledged across a restart of the process, as the real services
 * do: here, work-queue messages (a webhook delivery waiting for its retry).
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../shared/config/config.ts";
import { createEnvelope } from "../../shared/contracts/envelope.ts";
import { orderCreated } from "../../shared/contracts/events/ecommerce.ts";
import { delay, waitFor } from "../../shared/ports/contract/_wait_for.ts";
import type { QueueMessage } from "../../shared/ports/mod.ts";
import { migrate } from "../../shared/ports/sql_migrate.ts";
import { createTestTokens } from "../../shared/testing/test_tokens.ts";
import { outboxMigrations } from "../ecommerce/outbox/mod.ts";
import { startWebhooks, webhooksMigrations } from "../ecommerce/webhooks/mod.ts";
import { embeddedRegionPorts } from "./region_ports.ts";

Deno.test("embeddedRegionPorts() keeps a work-queue message not acked across a restart of the region's ports", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "bv-region-ports-" });
  const config = loadConfig({ BV_DATA_DIR: dataDir });
  try {
    const before = embeddedRegionPorts(config, "east");
    const queue = await before.workQueue();
    await queue.declare({ name: "webhooks.deliveries", retryDelaysMs: [30_000] });
    await queue.publish("webhooks.deliveries", "delivery", { id: "d-1" });
    await before.close(); // A restart: nothing consumed it.

    const after = embeddedRegionPorts(config, "east");
    try {
      const restarted = await after.workQueue();
      await restarted.declare({ name: "webhooks.deliveries", retryDelaysMs: [30_000] });
      const received: QueueMessage[] = [];
      await restarted.consume("webhooks.deliveries", (message) => Promise.resolve(void received.push(message)));
      await waitFor("the message accepted before the restart", () => received.length === 1);
      assert.equal(received[0].id, "d-1");
      assert.equal(received[0].body, "delivery");
    } finally {
      await after.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test({
  name: "embeddedRegionPorts(): a partner webhook waiting for its retry is delivered after a restart of the process",
  // PGlite and the webhook workers keep handles the sanitizers would flag; every one is closed below.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "bv-region-ports-" });
    const config = loadConfig({ BV_DATA_DIR: dataDir });
    const tokens = await createTestTokens();
    let receiverStatus = 503; // The partner is down until the restart.
    const requests: { eventId: string; status: number }[] = [];
    const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
      requests.push({ eventId: String((await request.json()).eventId), status: receiverStatus });
      return new Response(null, { status: receiverStatus });
    });
    /** What one process of the region runs of the webhooks, on the embedded ports. */
    const startRegion = async () => {
      const ports = embeddedRegionPorts(config, "east");
      const sql = await ports.sql();
      await migrate(sql, [...outboxMigrations, ...webhooksMigrations]);
      const eventLog = await ports.eventLog();
      const webhooks = await startWebhooks({
        sql,
        eventLog,
        queue: await ports.workQueue(),
        verifier: tokens.verifier,
        nudgeOutbox: () => {},
        region: "east",
        retryDelaysMs: [2_000],
        deliveryTimeoutMs: 2_000,
        egress: "any",
      });
      await webhooks.ready;
      return {
        sql,
        eventLog,
        webhooks,
        stop: async () => {
          await webhooks.close();
          await ports.close();
        },
      };
    };
    let region = await startRegion();
    try {
      const created = await region.webhooks.routes.request("/api/v1/webhooks/subscriptions", {
        method: "POST",
        headers: {
          authorization: `Bearer ${await tokens.token("partner-1", ["PARTNER"])}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          url: `http://127.0.0.1:${receiver.addr.port}/hooks`,
          events: [orderCreated.eventType],
        }),
      });
      assert.equal(created.status, 201);
      const event = createEnvelope(orderCreated, {
        orderId: "o-1",
        userId: "u-1",
        totalAmount: "10.00",
        currency: "USD",
        items: [{ productId: "p-1", qty: 1, price: "10.00" }],
      }, { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "c-1" });
      await region.eventLog.publish(event.eventType, [{ key: "o-1", value: JSON.stringify(event) }]);
      await waitFor("the failed first attempt", async () => {
        const [row] = await region.sql.query<{ n: number }>`
          select count(*)::int as n from webhook_delivery_attempts where outcome = 'FAILED'`;
        return row.n === 1;
      });
      await delay(300); // The retry is parked in the queue (journaled), about 2 s away.
      await region.stop(); // The restart: the dispatcher's marker and offset are durable, so it dispatches nothing again.

      receiverStatus = 204;
      region = await startRegion();
      await waitFor("the retry after the restart", () => requests.some((r) => r.status === 204), { timeoutMs: 10_000 });
      await waitFor("the delivered attempt recorded", async () => {
        const rows = await region.sql.query<{ attempt: number; outcome: string }>`
          select attempt, outcome from webhook_delivery_attempts order by attempt`;
        return rows.length === 2;
      });
      const rows = await region.sql.query<{ attempt: number; outcome: string }>`
        select attempt, outcome from webhook_delivery_attempts order by attempt`;
      assert.deepEqual(rows.map((r) => [r.attempt, r.outcome]), [[1, "FAILED"], [2, "DELIVERED"]]);
      assert.deepEqual(requests.map((r) => [r.eventId, r.status]), [[event.eventId, 503], [event.eventId, 204]]);
    } finally {
      await region.stop();
      await receiver.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
