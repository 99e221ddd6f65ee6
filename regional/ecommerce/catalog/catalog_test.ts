import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createMemoryCache, createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { productUpdated } from "../../../shared/contracts/events/ecommerce.ts";
import { metrics } from "../../../shared/observability/mod.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { outboxMigrations, startOutboxRelay } from "../outbox/mod.ts";
import {
  catalogMigrations,
  createCatalogRoutes,
  getProductsByIds,
  listProducts,
  productCacheKey,
  type ProductView,
  startProductCacheInvalidation,
} from "./mod.ts";

interface World {
  sql: Sql;
  cache: Cache;
  tokens: TestTokens;
  app: Hono;
  admin: string;
  customer: string;
  nudges: number;
}

let worldPromise: Promise<World> | undefined;

/** One PGlite database for the file (it takes seconds to boot); tests use distinct skus. */
function world(): Promise<World> {
  worldPromise ??= (async () => {
    const sql = await createPgliteSql();
    await migrate(sql, [...outboxMigrations, ...catalogMigrations]);
    const cache = createMemoryCache();
    const tokens = await createTestTokens();
    const w: World = {
      sql,
      cache,
      tokens,
      admin: await tokens.token("admin-1", ["ADMIN"]),
      customer: await tokens.token("customer-1"),
      nudges: 0,
      app: undefined as unknown as Hono,
    };
    w.app = createCatalogRoutes({ sql, cache, verifier: tokens.verifier, nudgeOutbox: () => void w.nudges++ });
    return w;
  })();
  return worldPromise;
}

let skuCounter = 0;
function sku(prefix = "SKU"): string {
  return `${prefix}-${Date.now().toString(36)}-${(skuCounter++).toString().padStart(4, "0")}`;
}

function send(w: World, method: string, path: string, body?: unknown, token: string | null = w.admin) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  return w.app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function createProduct(w: World, overrides: Record<string, unknown> = {}): Promise<ProductView> {
  const res = await send(w, "POST", "/api/v1/products", {
    sku: sku(),
    name: "Trail shoe",
    description: "Light and grippy",
    category: "shoes",
    price: "129.50",
    currency: "EUR",
    ...overrides,
  });
  assert.equal(res.status, 201, await res.clone().text());
  return await res.json();
}

async function problemCode(res: Response): Promise<string> {
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  return (await res.json()).code;
}

async function cacheCount(result: "hit" | "miss"): Promise<number> {
  const metric = await metrics.registry.getSingleMetric("bv_product_cache_requests_total")!.get();
  return metric.values.find((v) => v.labels.result === result)?.value ?? 0;
}

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...opts,
  name: "POST /products creates a product an admin can read back, with its first price and an event",
  fn: async () => {
    const w = await world();
    const nudgesBefore = w.nudges;
    const created = await createProduct(w, { price: "19.9" });
    assert.match(created.id, /^[0-9a-f-]{36}$/);
    assert.equal(created.price, "19.90");
    assert.deepEqual(Object.keys(created).sort(), [
      "category",
      "createdAt",
      "currency",
      "description",
      "id",
      "name",
      "price",
      "sku",
      "updatedAt",
    ]);
    assert.equal(w.nudges, nudgesBefore + 1);
    const read = await send(w, "GET", `/api/v1/products/${created.id}`, undefined, null);
    assert.deepEqual(await read.json(), created);
    const history = await (await send(w, "GET", `/api/v1/products/${created.id}/price-history`, undefined, null))
      .json();
    assert.equal(history.items.length, 1);
    assert.equal(history.items[0].price, "19.90");
    assert.equal(history.items[0].validTo, null);
    assert.equal(history.items[0].changedBy, "admin-1");
    const events = await w.sql.query<{ envelope: string }>`
      select envelope from outbox where topic = ${productUpdated.eventType} and partition_key = ${created.id}`;
    assert.equal(events.length, 1);
    assert.deepEqual(JSON.parse(events[0].envelope).payload, {
      productId: created.id,
      sku: created.sku,
      price: "19.90",
      currency: "EUR",
    });
  },
});

Deno.test({
  ...opts,
  name: "POST /products refuses a duplicate sku with 409 ECOMMERCE.SKU_TAKEN and non-admins with 401/403",
  fn: async () => {
    const w = await world();
    const first = await createProduct(w);
    const again = await send(w, "POST", "/api/v1/products", {
      sku: first.sku,
      name: "Other",
      category: "x",
      price: "1.00",
      currency: "EUR",
    });
    assert.equal(again.status, 409);
    assert.equal(await problemCode(again), "ECOMMERCE.SKU_TAKEN");
    const body = { sku: sku(), name: "N", category: "c", price: "1.00", currency: "EUR" };
    const asCustomer = await send(w, "POST", "/api/v1/products", body, w.customer);
    assert.equal(asCustomer.status, 403);
    assert.equal(await problemCode(asCustomer), "AUTH.FORBIDDEN");
    const anonymous = await send(w, "POST", "/api/v1/products", body, null);
    assert.equal(anonymous.status, 401);
    for (
      const bad of [{ ...body, price: "0.00" }, { ...body, price: "-1" }, { ...body, price: 10 }, {
        ...body,
        currency: "eur",
      }, { ...body, extra: true }]
    ) {
      const res = await send(w, "POST", "/api/v1/products", bad);
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.equal(await problemCode(res), "COMMON.VALIDATION_FAILED");
    }
  },
});

Deno.test({
  ...opts,
  name: "GET /products/{id} answers 404 ECOMMERCE.PRODUCT_NOT_FOUND for unknown and malformed ids",
  fn: async () => {
    const w = await world();
    for (const id of [crypto.randomUUID(), "not-a-uuid", "1%27%20or%201%3D1", "%00"]) {
      const res = await send(w, "GET", `/api/v1/products/${id}`, undefined, null);
      assert.equal(res.status, 404, id);
      assert.equal(await problemCode(res), "ECOMMERCE.PRODUCT_NOT_FOUND");
      const history = await send(w, "GET", `/api/v1/products/${id}/price-history`, undefined, null);
      assert.equal(history.status, 404);
      const put = await send(w, "PATCH", `/api/v1/products/${id}`, { name: "x" });
      assert.equal(put.status, 404);
    }
  },
});

Deno.test({
  ...opts,
  name: "GET /products/{id} reads through the cache: a miss fills product:{id}, the next read is a hit",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    const [hits, misses] = [await cacheCount("hit"), await cacheCount("miss")];
    await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null);
    assert.equal(await cacheCount("miss"), misses + 1);
    assert.deepEqual(JSON.parse((await w.cache.get(productCacheKey(product.id)))!), product);
    assert.ok((await w.cache.ttlMs(productCacheKey(product.id))) > 290_000);
    // Changed behind the cache's back: a hit still shows the cached copy, proving SQL was not read.
    await w.sql.query`update products set name = 'Changed' where id = ${product.id}::uuid`;
    const second = await (await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null)).json();
    assert.equal(second.name, product.name);
    assert.equal(await cacheCount("hit"), hits + 1);
  },
});

Deno.test({
  ...opts,
  name: "PUT with a new price closes the current price row and opens the next one (SCD2) and announces it",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    const put = await send(w, "PUT", `/api/v1/products/${product.id}`, {
      name: "Trail shoe v2",
      description: "Lighter",
      category: "shoes",
      price: "99.00",
      currency: "EUR",
    });
    assert.equal(put.status, 200);
    const updated: ProductView = await put.json();
    assert.equal(updated.price, "99.00");
    assert.equal(updated.name, "Trail shoe v2");
    assert.equal(updated.createdAt, product.createdAt);
    const { items } = await (await send(w, "GET", `/api/v1/products/${product.id}/price-history`, undefined, null))
      .json();
    assert.deepEqual(items.map((r: { price: string }) => r.price), ["99.00", "129.50"]);
    assert.equal(items[0].validTo, null);
    assert.equal(items[1].validTo, items[0].validFrom, "the closed row ends where the new one starts");
    const [{ version }] = await w.sql.query`select version from products where id = ${product.id}::uuid`;
    assert.equal(version, 2);
    const events = await w.sql.query<{ envelope: string }>`
      select envelope from outbox where partition_key = ${product.id} order by id`;
    assert.deepEqual(events.map((e) => JSON.parse(e.envelope).payload.price), ["129.50", "99.00"]);

    // A PATCH of the name only: event, no price row. A PATCH that changes nothing: neither.
    const patch = await send(w, "PATCH", `/api/v1/products/${product.id}`, { name: "Renamed" });
    assert.equal((await patch.json()).name, "Renamed");
    const same = await send(w, "PATCH", `/api/v1/products/${product.id}`, { price: "99", currency: "EUR" });
    assert.equal(same.status, 200);
    const [{ n: rows }] = await w.sql.query`
      select count(*)::int as n from product_price_history where product_id = ${product.id}::uuid`;
    assert.equal(rows, 2);
    const [{ n: outboxRows }] = await w.sql
      .query`select count(*)::int as n from outbox where partition_key = ${product.id}`;
    assert.equal(outboxRows, 3);
    // A currency change is a price change too.
    await send(w, "PATCH", `/api/v1/products/${product.id}`, { currency: "USD" });
    const history =
      await (await send(w, "GET", `/api/v1/products/${product.id}/price-history?limit=1`, undefined, null))
        .json();
    assert.deepEqual(history.items.map((r: { currency: string }) => r.currency), ["USD"]);

    const empty = await send(w, "PATCH", `/api/v1/products/${product.id}`, {});
    assert.equal(empty.status, 400);
    const withSku = await send(w, "PATCH", `/api/v1/products/${product.id}`, { sku: "NEW" });
    assert.equal(withSku.status, 400);
    const partialPut = await send(w, "PUT", `/api/v1/products/${product.id}`, { name: "only" });
    assert.equal(partialPut.status, 400);
    const asCustomer = await send(w, "PATCH", `/api/v1/products/${product.id}`, { name: "x" }, w.customer);
    assert.equal(asCustomer.status, 403);
  },
});

Deno.test({
  ...opts,
  name: "a product change whose event cannot be written is rolled back: neither the change nor the event remains",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    await w.sql.exec(`
      create or replace function refuse_outbox() returns trigger language plpgsql as $$
      begin raise exception 'outbox refused for the test'; end $$;
      create trigger refuse_outbox before insert on outbox for each row execute function refuse_outbox();`);
    try {
      const res = await send(w, "PATCH", `/api/v1/products/${product.id}`, { price: "1.00", name: "Never" });
      assert.equal(res.status, 500);
      assert.equal(await problemCode(res), "COMMON.INTERNAL");
    } finally {
      await w.sql.exec("drop trigger refuse_outbox on outbox; drop function refuse_outbox();");
    }
    const [row] = await w.sql
      .query`select name, price::text as price, version from products where id = ${product.id}::uuid`;
    assert.deepEqual(row, { name: product.name, price: "129.50", version: 1 });
    const [{ n: history }] = await w.sql.query`
      select count(*)::int as n from product_price_history where product_id = ${product.id}::uuid`;
    assert.equal(history, 1);
    const [{ n: events }] = await w.sql
      .query`select count(*)::int as n from outbox where partition_key = ${product.id}`;
    assert.equal(events, 1, "only the creation event");
  },
});

Deno.test({
  ...opts,
  name: "the product cache is invalidated only when the product.updated event is consumed",
  fn: async () => {
    const w = await world();
    const eventLog = createMemoryEventLog();
    await eventLog.ensureTopics([{ name: productUpdated.eventType, partitions: 3 }]);
    const product = await createProduct(w);
    await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null);
    const key = productCacheKey(product.id);
    assert.notEqual(await w.cache.get(key), null);
    await w.cache.set(`gql:product:${product.id}`, "{}");

    const put = await send(w, "PATCH", `/api/v1/products/${product.id}`, { price: "42.00" });
    assert.equal(put.status, 200);
    assert.notEqual(await w.cache.get(key), null, "the write path does not touch the cache");
    const stale = await (await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null)).json();
    assert.equal(stale.price, "129.50");

    const sub = await startProductCacheInvalidation({ eventLog, cache: w.cache, groupId: "catalog-cache-test" });
    await sub.ready;
    const relay = startOutboxRelay({ sql: w.sql, eventLog, pollIntervalMs: 20 });
    try {
      await waitFor("product:{id} deleted", async () => (await w.cache.get(key)) === null);
      assert.equal(await w.cache.get(`gql:product:${product.id}`), null);
      const fresh = await (await send(w, "GET", `/api/v1/products/${product.id}`, undefined, null)).json();
      assert.equal(fresh.price, "42.00");
    } finally {
      await relay.stop();
      await sub.close();
      await eventLog.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "GET /products pages in sku order without skipping or repeating while products are added",
  fn: async () => {
    const w = await world();
    const category = `page-${Date.now().toString(36)}`;
    const prefix = `PG${Date.now().toString(36)}`;
    for (let i = 0; i < 25; i++) {
      await createProduct(w, { sku: `${prefix}-${String(i * 2).padStart(3, "0")}`, category });
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?category=${category}&limit=10${cursor ? `&cursor=${cursor}` : ""}`;
      const page: { items: ProductView[]; nextCursor: string | null } =
        await (await send(w, "GET", `/api/v1/products${query}`, undefined, null)).json();
      seen.push(...page.items.map((p) => p.sku));
      cursor = page.nextCursor;
      if (pages++ === 0) {
        // Added behind the cursor and ahead of it: the first is not seen, the second is, nothing repeats.
        await createProduct(w, { sku: `${prefix}-001`, category });
        await createProduct(w, { sku: `${prefix}-041`, category });
      }
    } while (cursor !== null && pages < 10);
    assert.equal(pages, 3);
    assert.equal(new Set(seen).size, seen.length, "no sku is repeated");
    assert.deepEqual(seen, [...seen].sort());
    assert.equal(seen.length, 26);
    assert.ok(seen.includes(`${prefix}-041`) && !seen.includes(`${prefix}-001`));
  },
});

Deno.test({
  ...opts,
  name: "GET /products filters by text (wildcards are literal), category and price range",
  fn: async () => {
    const w = await world();
    const category = `filter-${Date.now().toString(36)}`;
    await createProduct(w, { category, name: "100% wool sock", price: "12.00" });
    await createProduct(w, { category, name: "Cotton sock", description: "soft_and_warm", price: "8.50" });
    await createProduct(w, { category, name: "Wool hat", price: "30.00" });
    const names = async (query: string) =>
      ((await (await send(w, "GET", `/api/v1/products?category=${category}&${query}`, undefined, null)).json())
        .items as ProductView[]).map((p) => p.name).sort();
    assert.deepEqual(await names("q=wool"), ["100% wool sock", "Wool hat"]);
    assert.deepEqual(await names("q=100%25"), ["100% wool sock"]);
    assert.deepEqual(await names("q=%25"), ["100% wool sock"]);
    assert.deepEqual(await names("q=_and_"), ["Cotton sock"]);
    assert.deepEqual(await names("q=t_n"), []);
    assert.deepEqual(await names("minPrice=8.50&maxPrice=12"), ["100% wool sock", "Cotton sock"]);
    assert.deepEqual(await names("minPrice=12.01"), ["Wool hat"]);
    const direct = await listProducts(w.sql, { category, q: "SOCK", limit: 1 });
    assert.equal(direct.items.length, 1);
    assert.notEqual(direct.nextCursor, null);

    for (
      const bad of [
        "minPrice=20&maxPrice=10",
        "minPrice=abc",
        "limit=0",
        "limit=101",
        "limit=ten",
        "cursor=not*valid",
        "cursor=eyJ2IjoyfQ",
        "colour=red",
        `q=${"x".repeat(101)}`,
      ]
    ) {
      const res = await send(w, "GET", `/api/v1/products?${bad}`, undefined, null);
      assert.equal(res.status, 400, bad);
      assert.equal(await problemCode(res), "COMMON.VALIDATION_FAILED");
    }
  },
});

Deno.test({
  ...opts,
  name: "getProductsByIds returns known products and ignores unknown or malformed ids",
  fn: async () => {
    const w = await world();
    const a = await createProduct(w);
    const b = await createProduct(w);
    const found = await getProductsByIds(w.sql, [a.id, b.id.toUpperCase(), crypto.randomUUID(), "nope", a.id]);
    assert.deepEqual([...found.keys()].sort(), [a.id, b.id].sort());
    assert.deepEqual(found.get(a.id), a);
    assert.equal((await getProductsByIds(w.sql, [])).size, 0);
  },
});

Deno.test({
  ...opts,
  name: "close the catalog test database",
  fn: async () => {
    if (worldPromise) await (await worldPromise).sql.close();
  },
});

async function waitFor(what: string, predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
