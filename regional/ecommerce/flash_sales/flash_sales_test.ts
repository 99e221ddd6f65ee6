import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createMemoryCache, createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { flashSaleStarted } from "../../../shared/contracts/events/ecommerce.ts";
import { flashSaleEnded } from "../../../shared/contracts/events/pricing.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { type Cache, dlqTopicOf, type EventLog, type IncomingRecord, type Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createServiceApp } from "../../../shared/runtime/mod.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { createCatalogRoutes } from "../catalog/mod.ts";
import { envelopeFor, outboxMigrations, type OutboxRelay, startOutboxRelay } from "../outbox/mod.ts";
import { catalogMigrations } from "../catalog/mod.ts";
import { openSse, type SseEvent, waitUntil } from "./_sse_client_for_test.ts";
import { recordBroadcast } from "./broadcast_log.ts";
import { startFlashSaleHub } from "./flash_sale_hub.ts";
import { createSalePrices, flashPriceKey, type FlashSales, flashSalesMigrations, startFlashSales } from "./mod.ts";

interface Process {
  readonly flashSales: FlashSales;
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  readonly app: Hono;
  readonly url: string;
}

interface World {
  readonly sql: Sql;
  readonly cache: Cache;
  readonly eventLog: EventLog;
  readonly relay: OutboxRelay;
  /** Two processes of region "east": same database, cache and event log, one consumer group. */
  readonly processes: readonly Process[];
  readonly admin: string;
  readonly customer: string;
  close(): Promise<void>;
}

const FAST = { heartbeatMs: 100, catchUpIntervalMs: 300, endCheckIntervalMsMax: 100 };

async function startWorld(): Promise<World> {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...flashSalesMigrations]);
  const cache = createMemoryCache();
  const eventLog = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 20 } });
  const relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 20 });
  const tokens = await createTestTokens();
  const processes: Process[] = [];
  for (let i = 0; i < 2; i++) {
    const deps = { sql, cache, eventLog, verifier: tokens.verifier, nudgeOutbox: () => relay.nudge() };
    const flashSales = await startFlashSales({ ...deps, region: "east" }, FAST);
    const app = createServiceApp({ name: `ecommerce-east-${i}`, checks: {} });
    app.route("/", createCatalogRoutes({ ...deps, cache }));
    app.route("/", flashSales.routes);
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    processes.push({ flashSales, server, app, url: `http://127.0.0.1:${server.addr.port}` });
  }
  return {
    sql,
    cache,
    eventLog,
    relay,
    processes,
    admin: await tokens.token("admin-1", ["ADMIN"]),
    customer: await tokens.token("customer-1"),
    async close() {
      for (const p of processes) {
        await p.flashSales.close();
        await p.server.shutdown();
      }
      await relay.stop();
      await eventLog.close();
      await cache.close();
      await sql.close();
    },
  };
}

function send(w: World, method: string, path: string, body?: unknown, token: string | null = w.admin) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
  return w.processes[0].app.request(path, init);
}

let skuCounter = 0;
async function createProduct(w: World, price = "100.00"): Promise<string> {
  const sku = `FLASH-${Date.now().toString(36)}-${skuCounter++}`;
  const res = await send(w, "POST", "/api/v1/products", {
    sku,
    name: "Kettle",
    category: "home",
    price,
    currency: "EUR",
  });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()).id;
}

async function startSale(w: World, productId: string, durationSec: number, price = "59.90") {
  const res = await send(w, "POST", "/api/v1/flash-sales", { productId, price, durationSec });
  assert.equal(res.status, 201, await res.clone().text());
  return await res.json() as { saleId: string; productId: string; price: string; currency: string; endsAt: string };
}

async function assertProblem(res: Response, status: number, code: string): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get("content-type") ?? "", /^application\/problem\+json/);
  assert.equal(JSON.parse(text).code, code, text);
}

const ofProduct = (productId: string) => (event: SseEvent) => event.data.productId === productId;

Deno.test({
  name: "[pglite+memory] flash sales",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const w = await startWorld();
    try {
      await t.step("only an ADMIN starts a sale: 401 without a token, 403 for a customer", async () => {
        const productId = await createProduct(w);
        const body = { productId, price: "10.00", durationSec: 60 };
        const anonymous = await send(w, "POST", "/api/v1/flash-sales", body, null);
        assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Bearer/);
        await assertProblem(anonymous, 401, "AUTH.UNAUTHENTICATED");
        await assertProblem(await send(w, "POST", "/api/v1/flash-sales", body, w.customer), 403, "AUTH.FORBIDDEN");
        const rows = await w.sql.query`select 1 from flash_sales where product_id = ${productId}::uuid`;
        assert.equal(rows.length, 0, "a refused start writes nothing");
        await assertProblem(await send(w, "GET", `/api/v1/flash-sales/${productId}`), 404, "COMMON.NOT_FOUND");
      });

      await t.step("bad input answers a 4xx problem+json and starts nothing", async () => {
        const productId = await createProduct(w, "20.00");
        const valid = { productId, price: "9.99", durationSec: 60 };
        const cases: [unknown, number, string][] = [
          [{ ...valid, extra: true }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, price: 9.99 }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, price: "0" }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, price: "-1.00" }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, price: "1.999" }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, price: "20.00" }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, durationSec: 0 }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, durationSec: 1.5 }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, durationSec: 8 * 24 * 3600 }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, productId: "not-a-uuid" }, 400, "COMMON.VALIDATION_FAILED"],
          [{ ...valid, productId: crypto.randomUUID() }, 404, "ECOMMERCE.PRODUCT_NOT_FOUND"],
          [[], 400, "COMMON.VALIDATION_FAILED"],
          [null, 400, "COMMON.VALIDATION_FAILED"],
        ];
        for (const [body, status, code] of cases) {
          await assertProblem(await send(w, "POST", "/api/v1/flash-sales", body), status, code);
        }
        const malformed = await w.processes[0].app.request("/api/v1/flash-sales", {
          method: "POST",
          headers: { authorization: `Bearer ${w.admin}`, "content-type": "application/json" },
          body: "{",
        });
        await assertProblem(malformed, 400, "COMMON.MALFORMED_JSON");
        const wrongType = await w.processes[0].app.request("/api/v1/flash-sales", {
          method: "POST",
          headers: { authorization: `Bearer ${w.admin}`, "content-type": "text/plain" },
          body: JSON.stringify(valid),
        });
        await assertProblem(wrongType, 415, "COMMON.UNSUPPORTED_MEDIA_TYPE");
        const huge = await w.processes[0].app.request("/api/v1/flash-sales", {
          method: "POST",
          headers: { authorization: `Bearer ${w.admin}`, "content-type": "application/json" },
          body: JSON.stringify({ ...valid, pad: "x".repeat(1024 * 1024 + 1) }),
        });
        await assertProblem(huge, 413, "COMMON.PAYLOAD_TOO_LARGE");
        await assertProblem(await send(w, "GET", "/api/v1/flash-sales/%27%20or%201=1"), 404, "COMMON.NOT_FOUND");
        const rows = await w.sql.query`select 1 from flash_sales where product_id = ${productId}::uuid`;
        assert.equal(rows.length, 0);
      });

      await t.step("the sale price is served from flash_price:{productId} with a TTL until it ends", async () => {
        const productId = await createProduct(w, "100.00");
        const sale = await startSale(w, productId, 2, "59.9");
        assert.equal(sale.price, "59.90");
        assert.equal(sale.currency, "EUR");
        assert.ok(Math.abs(Date.parse(sale.endsAt) - (Date.now() + 2_000)) < 1_000);
        await waitUntil("the price in the cache", async () => (await w.cache.get(flashPriceKey(productId))) !== null);
        const ttlMs = await w.cache.ttlMs(flashPriceKey(productId));
        assert.ok(ttlMs > 0 && ttlMs <= 2_000, `TTL ${ttlMs} ms`);
        // Checkout's reader (orders charge this price) understands what the projection wrote.
        const charged = await createSalePrices(w.cache, w.sql)([productId.toUpperCase()]);
        assert.deepEqual(charged.get(productId), { saleId: sale.saleId, price: "59.90", currency: "EUR" });
        const res = await send(w, "GET", `/api/v1/flash-sales/${productId.toUpperCase()}`);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("cache-control"), "no-store");
        assert.deepEqual(await res.json(), sale);
        // The cache is the authority: what it holds is what is served.
        await w.cache.set(flashPriceKey(productId), JSON.stringify({ ...sale, price: "49.90" }), { ttlMs: 1_000 });
        assert.equal((await (await send(w, "GET", `/api/v1/flash-sales/${productId}`)).json()).price, "49.90");
        await assertProblem(
          await send(w, "POST", "/api/v1/flash-sales", { productId, price: "1.00", durationSec: 5 }),
          409,
          "COMMON.CONFLICT",
        );
        await waitUntil(
          "the sale to end",
          async () => (await send(w, "GET", `/api/v1/flash-sales/${productId}`)).status === 404,
          5_000,
        );
        await waitUntil(
          "ended_at set",
          async () =>
            (await w.sql.query`select 1 from flash_sales where sale_id = ${sale.saleId}::uuid and ended_at is not null`)
              .length === 1,
          5_000,
        );
        const next = await startSale(w, productId, 1, "79.00");
        assert.notEqual(next.saleId, sale.saleId, "a product may have a new sale once the last one ended");
      });

      await t.step(
        "starts and ends reach every SSE subscriber of the region, on both processes, in order",
        async () => {
          const productId = await createProduct(w);
          const clients = await Promise.all(
            w.processes.flatMap((p) => [openSse(`${p.url}/sse/flash-sales`), openSse(`${p.url}/sse/flash-sales`)]),
          );
          try {
            for (const client of clients) {
              assert.equal(client.status, 200);
              assert.match(client.headers.get("content-type") ?? "", /^text\/event-stream/);
            }
            const sale = await startSale(w, productId, 1);
            for (const client of clients) {
              const [started, ended] = await client.waitForEvents(2, ofProduct(productId), 5_000);
              assert.equal(started.event, "flash_sale.started");
              assert.deepEqual(started.data, sale);
              assert.equal(ended.event, "flash_sale.ended");
              assert.equal(ended.data.saleId, sale.saleId);
              assert.ok(Number(ended.id) > Number(started.id), "ids grow");
              assert.ok(client.comments() > 0, "heartbeats arrive");
            }
            const ids = clients.map((c) => c.events.filter(ofProduct(productId)).map((e) => e.id).join(","));
            assert.equal(new Set(ids).size, 1, "every process numbers events the same way");
          } finally {
            await Promise.all(clients.map((c) => c.close()));
          }
        },
      );

      await t.step("a client resuming with Last-Event-ID gets exactly what it missed, on either process", async () => {
        const productId = await createProduct(w);
        const first = await openSse(`${w.processes[0].url}/sse/flash-sales`);
        // Stays connected to the other process: tells when it has pushed everything below.
        const observer = await openSse(`${w.processes[1].url}/sse/flash-sales`);
        try {
          const sale = await startSale(w, productId, 1);
          const [started] = await first.waitForEvents(1, ofProduct(productId), 5_000);
          await first.close();
          // While disconnected: the sale ends and the next one starts.
          await observer.waitForEvents(2, ofProduct(productId), 5_000);
          const second = await startSale(w, productId, 30, "42.00");
          const seen = await observer.waitForEvents(3, ofProduct(productId), 5_000);
          const resumed = await openSse(`${w.processes[1].url}/sse/flash-sales`, { "last-event-id": started.id });
          try {
            const events = await resumed.waitForEvents(2, ofProduct(productId), 5_000);
            assert.deepEqual(events.map((e) => [e.event, e.data.saleId]), [
              ["flash_sale.ended", sale.saleId],
              ["flash_sale.started", second.saleId],
            ]);
            assert.deepEqual(
              events.map((e) => e.id),
              seen.slice(1).map((e) => e.id),
              "the same ids as live clients got",
            );
            // A short window for a duplicate to show up, had the replay and the live path overlapped.
            await new Promise((r) => setTimeout(r, 300));
            assert.equal(resumed.events.filter(ofProduct(productId)).length, 2, "no duplicates");
          } finally {
            await resumed.close();
          }
        } finally {
          await first.close();
          await observer.close();
        }
      });

      await t.step("a disconnected client is freed within 5 s", async () => {
        const hub = w.processes[0].flashSales.hub;
        await waitUntil("the earlier steps' clients to be freed", () => hub.subscribers() === 0, 5_000);
        const client = await openSse(`${w.processes[0].url}/sse/flash-sales`);
        assert.equal(hub.subscribers(), 1);
        await client.close();
        await waitUntil("the subscriber to be freed", () => hub.subscribers() === 0, 5_000);
      });

      await t.step("a malformed flash sale record goes to the DLQ and the consumer carries on", async () => {
        const dlq: IncomingRecord[] = [];
        const sub = await w.eventLog.subscribe({
          groupId: `dlq-reader-${crypto.randomUUID()}`,
          topics: [dlqTopicOf(flashSaleStarted.eventType)],
          from: "earliest",
          handler: (record) => Promise.resolve(void dlq.push(record)),
        });
        try {
          await w.eventLog.publish(flashSaleStarted.eventType, [{ key: "bad", value: '{"not":"an envelope"}' }]);
          await waitUntil("the dead letter", () => dlq.some((r) => r.key === "bad"), 5_000);
          assert.match(dlq.find((r) => r.key === "bad")!.headers["x-bv-error"], /Bad envelope/);
          const productId = await createProduct(w);
          await startSale(w, productId, 30);
          await waitUntil(
            "the next sale in the cache",
            async () => (await w.cache.get(flashPriceKey(productId))) !== null,
            5_000,
          );
        } finally {
          await sub.close();
        }
      });

      await t.step("a start read after its sale ended is neither priced nor broadcast; its end is", async () => {
        const client = await openSse(`${w.processes[0].url}/sse/flash-sales`);
        try {
          const productId = await createProduct(w);
          const sale = {
            saleId: crypto.randomUUID(),
            productId,
            price: "10.00",
            currency: "EUR",
            endsAt: new Date(Date.now() - 1_000).toISOString(),
          };
          // The end was read first (it travels on its own topic), then the late start.
          const ended = { saleId: sale.saleId, productId, endedAt: new Date().toISOString() };
          await w.eventLog.publish(flashSaleEnded.eventType, [{
            key: productId,
            value: JSON.stringify(envelopeFor(flashSaleEnded, ended, "test")),
          }]);
          await client.waitForEvents(1, ofProduct(productId), 5_000);
          await w.eventLog.publish(flashSaleStarted.eventType, [{
            key: productId,
            value: JSON.stringify(envelopeFor(flashSaleStarted, sale, "test")),
          }]);
          // A live sale published after it is broadcast, so the late start had its chance to arrive first.
          const next = await startSale(w, await createProduct(w), 30);
          await client.waitForEvents(1, ofProduct(next.productId), 5_000);
          assert.deepEqual(client.events.filter(ofProduct(productId)).map((e) => e.event), ["flash_sale.ended"]);
          assert.equal(await w.cache.get(flashPriceKey(productId)), null);
        } finally {
          await client.close();
        }
      });

      await t.step("a broadcast whose pub/sub message was lost is filled in from the log, in order", async () => {
        const client = await openSse(`${w.processes[0].url}/sse/flash-sales`);
        try {
          const eventId = crypto.randomUUID();
          const productId = crypto.randomUUID();
          const data = { saleId: crypto.randomUUID(), productId, endedAt: new Date().toISOString() };
          // Recorded but never published, as when the publish after the commit fails.
          await recordBroadcast(w.sql, { eventId, event: "flash_sale.ended", data }, 1_000);
          const [event] = await client.waitForEvents(1, ofProduct(productId), 3_000);
          assert.deepEqual(event.data, data);
        } finally {
          await client.close();
        }
      });
    } finally {
      await w.close();
    }
  },
});

Deno.test({
  name: "[pglite+memory] the SSE hub refuses streams past subscribersMax with 429 and frees them on abort",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    await migrate(sql, [...outboxMigrations, ...flashSalesMigrations]);
    const cache = createMemoryCache();
    const hub = await startFlashSaleHub({ sql, cache, channel: "flash_sales:test", subscribersMax: 2 });
    try {
      const aborts = [new AbortController(), new AbortController()];
      const responses = aborts.map((a) => hub.open({ signal: a.signal }));
      assert.equal(hub.subscribers(), 2);
      assert.throws(() => hub.open({ signal: new AbortController().signal }), (error: unknown) => {
        assert.ok(error instanceof ProblemError);
        assert.equal(error.status, 429);
        assert.equal(error.headers?.["retry-after"], "5");
        return true;
      });
      aborts[0].abort();
      assert.equal(hub.subscribers(), 1);
      const third = hub.open({ signal: new AbortController().signal, lastEventId: "not-a-number" });
      assert.equal(third.status, 200);
      await Promise.all([...responses, third].map((r) => r.body?.cancel()));
      assert.equal(hub.subscribers(), 0);
    } finally {
      await hub.close();
      await cache.close();
      await sql.close();
    }
  },
});
