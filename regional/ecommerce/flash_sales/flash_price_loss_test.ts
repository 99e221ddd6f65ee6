/**
 * What happens when the cache loses a running sale's price (embedded restart, eviction, Redis restarted without
 * persistence): the started event was projected and committed long ago, so only the reconciler started by
 * `startFlashSales` can put the price back.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createMemoryCache, createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Cache, EventLog, Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createServiceApp } from "../../../shared/runtime/mod.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { catalogMigrations, createCatalogRoutes } from "../catalog/mod.ts";
import { outboxMigrations, type OutboxRelay, startOutboxRelay } from "../outbox/mod.ts";
import { waitUntil } from "./_sse_client_for_test.ts";
import {
  flashPriceKey,
  type FlashSales,
  flashSalesMigrations,
  type FlashSalesOptions,
  startFlashSales,
} from "./mod.ts";

interface World {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  readonly relay: OutboxRelay;
  readonly admin: string;
  /** One process of region "east"; `restart` replaces it. */
  process: { readonly cache: Cache; readonly flashSales: FlashSales; readonly app: Hono };
  /** Stops the process and starts it again on an empty in-memory cache, as an embedded restart does. */
  restart(options: FlashSalesOptions): Promise<void>;
  close(): Promise<void>;
}

async function startWorld(options: FlashSalesOptions): Promise<World> {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...flashSalesMigrations]);
  const eventLog = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 20 } });
  const relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 20 });
  const tokens = await createTestTokens();
  async function startProcess(flashSalesOptions: FlashSalesOptions) {
    const cache = createMemoryCache();
    const deps = { sql, cache, eventLog, verifier: tokens.verifier, nudgeOutbox: () => relay.nudge() };
    const flashSales = await startFlashSales({ ...deps, region: "east" }, flashSalesOptions);
    const app = createServiceApp({ name: "ecommerce-east", checks: {} });
    app.route("/", createCatalogRoutes(deps));
    app.route("/", flashSales.routes);
    return { cache, flashSales, app };
  }
  const world: World = {
    sql,
    eventLog,
    relay,
    admin: await tokens.token("admin-1", ["ADMIN"]),
    process: await startProcess(options),
    async restart(restartOptions) {
      await world.process.flashSales.close();
      await world.process.cache.close();
      world.process = await startProcess(restartOptions);
    },
    async close() {
      await world.process.flashSales.close();
      await world.process.cache.close();
      await relay.stop();
      await eventLog.close();
      await sql.close();
    },
  };
  return world;
}

function send(w: World, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${w.admin}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  return w.process.app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

interface Sale {
  saleId: string;
  productId: string;
  price: string;
  currency: string;
  endsAt: string;
}

/** A product and a sale of it running for `durationSec`, its price projected into the cache. */
async function startProjectedSale(w: World, durationSec: number): Promise<Sale> {
  const product = await send(w, "POST", "/api/v1/products", {
    sku: `LOSS-${crypto.randomUUID().slice(0, 8)}`,
    name: "Toaster",
    category: "home",
    price: "100.00",
    currency: "EUR",
  });
  assert.equal(product.status, 201, await product.clone().text());
  const productId: string = (await product.json()).id;
  const res = await send(w, "POST", "/api/v1/flash-sales", { productId, price: "59.90", durationSec });
  assert.equal(res.status, 201, await res.clone().text());
  const sale: Sale = await res.json();
  const key = flashPriceKey(productId);
  await waitUntil("the projected price", async () => (await w.process.cache.get(key)) !== null, 5_000);
  return sale;
}

// Declared apart (not an object literal at the call), so this file also runs against a startFlashSales
// without the option: it then shows the defect instead of failing to type-check.
const RECONCILE_FAST = { endCheckIntervalMsMax: 100, priceReconcileIntervalMs: 100 };
const RECONCILE_DEFAULT = { endCheckIntervalMsMax: 100 };

Deno.test({
  name: "[pglite+memory] a running sale's price survives the cache losing it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const w = await startWorld(RECONCILE_FAST);
    try {
      await t.step("a lost key is restored from the database with a TTL within the time left", async () => {
        const sale = await startProjectedSale(w, 30);
        const key = flashPriceKey(sale.productId);
        assert.equal(await w.process.cache.del(key), 1, "the key is lost, as on eviction or a Redis restart");
        await waitUntil("the price to be restored", async () => (await w.process.cache.get(key)) !== null, 5_000);
        assert.deepEqual(JSON.parse((await w.process.cache.get(key))!), sale);
        const beforeMs = Date.now();
        const ttlMs = await w.process.cache.ttlMs(key);
        const leftMs = Date.parse(sale.endsAt) - beforeMs;
        // A TTL is relative: the reconciler computes it as `ends_at - now`, and the cache counts it from its own
        // clock when the write lands, a millisecond or so later (CI read 29922 ms with 29921 left). A few ms of
        // slack, far below a TTL that ignored the time already gone.
        const writeSlackMs = 5;
        assert.ok(
          ttlMs > 0 && ttlMs <= leftMs + writeSlackMs,
          `TTL ${ttlMs} ms with ${leftMs} ms of the sale left`,
        );
        const res = await send(w, "GET", `/api/v1/flash-sales/${sale.productId}`);
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), sale);
      });

      await t.step("a process restarted on an empty cache serves the running sale's price once started", async () => {
        const sale = await startProjectedSale(w, 30);
        // The consumer group committed past the started event: nothing projects it again after the restart.
        // The default interval (15 s) leaves the restart's first pass as the only one this step can see.
        await w.restart(RECONCILE_DEFAULT);
        const res = await send(w, "GET", `/api/v1/flash-sales/${sale.productId}`);
        assert.equal(res.status, 200, await res.clone().text());
        assert.deepEqual(await res.json(), sale);
        const next = await send(w, "POST", "/api/v1/flash-sales", {
          productId: sale.productId,
          price: "10.00",
          durationSec: 5,
        });
        assert.equal(next.status, 409, "the sale still runs, and now its price is served too");
      });
    } finally {
      await w.close();
    }
  },
});
