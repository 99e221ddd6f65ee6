import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { metrics } from "../../../shared/observability/mod.ts";
import { createServiceApp } from "../../../shared/runtime/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { SqlError } from "../../../shared/ports/sql_values.ts";
import { gqlProductCacheKey as catalogGqlKey } from "../catalog/mod.ts";
import { graphqlApp, insertProduct, LEAKS, migrateForGraphql, post, replyOf } from "./_fixture_for_test.ts";
import { createGraphqlRoutes, GQL_PRODUCT_CACHE, gqlProductCacheKey, graphqlSchemaSdl } from "./mod.ts";

// One PGlite for the file (it takes seconds to boot); each test inserts its own products.
let shared: Promise<Sql> | undefined;
function database(): Promise<Sql> {
  shared ??= createPgliteSql().then(async (sql) => {
    await migrateForGraphql(sql);
    return sql;
  });
  return shared;
}
const opts = { sanitizeResources: false, sanitizeOps: false };

const PRODUCT_FIELDS =
  "id sku name description category price currency inventory { productId sku onHand reserved available }";

Deno.test("product(id) answers the product joined with its stock", opts, async () => {
  const sql = await database();
  const p = await insertProduct(sql, { stock: { onHand: 10, reserved: 3 } });
  const { app } = graphqlApp(sql, createMemoryCache());
  const reply = await post(app, `query($id: ID!) { product(id: $id) { ${PRODUCT_FIELDS} } }`, { id: p.id });
  assert.equal(reply.status, 200, reply.text);
  assert.equal(reply.body.errors, undefined);
  assert.deepEqual(reply.body.data.product, {
    id: p.id,
    sku: p.sku,
    name: "Trail shoe",
    description: "Light and grippy",
    category: "shoes",
    price: "129.50",
    currency: "USD",
    inventory: { productId: p.id, sku: p.sku, onHand: 10, reserved: 3, available: 7 },
  });
});

Deno.test(
  "a product never counted by inventory shows zero stock; an unknown or malformed id is null",
  opts,
  async () => {
    const sql = await database();
    const p = await insertProduct(sql);
    const { app } = graphqlApp(sql, createMemoryCache());
    const reply = await post(
      app,
      `query($id: ID!, $unknown: ID!) {
      counted: product(id: $id) { inventory { onHand reserved available } }
      unknown: product(id: $unknown) { id }
      malformed: product(id: "not-a-uuid'; drop table products --") { id }
      stockOfUnknown: productInventory(id: $unknown) { available }
    }`,
      { id: p.id.toUpperCase(), unknown: crypto.randomUUID() },
    );
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.body.errors, undefined);
    assert.deepEqual(reply.body.data, {
      counted: { inventory: { onHand: 0, reserved: 0, available: 0 } },
      unknown: null,
      malformed: null,
      stockOfUnknown: null,
    });
  },
);

Deno.test("productInventory(id) answers the stock with the catalog's sku", opts, async () => {
  const sql = await database();
  const p = await insertProduct(sql, { stock: { onHand: 5, reserved: 5 } });
  const { app } = graphqlApp(sql, createMemoryCache());
  const reply = await post(app, `{ productInventory(id: "${p.id}") { productId sku onHand reserved available } }`);
  assert.equal(reply.status, 200, reply.text);
  assert.deepEqual(reply.body.data.productInventory, {
    productId: p.id,
    sku: p.sku,
    onHand: 5,
    reserved: 5,
    available: 0,
  });
});

Deno.test("products(filter) filters by category and price and pages with first/after", opts, async () => {
  const sql = await database();
  const category = `cat-${crypto.randomUUID().slice(0, 8)}`;
  const cheap = await insertProduct(sql, { category, price: "5.00", stock: { onHand: 1, reserved: 0 } });
  const mid1 = await insertProduct(sql, { category, price: "20.00", stock: { onHand: 2, reserved: 1 } });
  const mid2 = await insertProduct(sql, { category, price: "30.00" });
  await insertProduct(sql, { category, price: "500.00" });
  await insertProduct(sql, { category: `${category}-other`, price: "20.00" });
  const { app } = graphqlApp(sql, createMemoryCache());
  const page = (after: string | null) =>
    post(
      app,
      `query($category: String, $after: String) {
        products(filter: { category: $category, minPrice: "10", maxPrice: "100.00" }, first: 1, after: $after) {
          nodes { sku price inventory { available } }
          pageInfo { hasNextPage endCursor }
        }
      }`,
      { category, after },
    );
  const first = await page(null);
  assert.equal(first.status, 200, first.text);
  const expected = [mid1, mid2].sort((a, b) => a.sku.localeCompare(b.sku));
  assert.deepEqual(first.body.data.products.nodes.map((n: { sku: string }) => n.sku), [expected[0].sku]);
  assert.equal(first.body.data.products.pageInfo.hasNextPage, true);
  const second = await page(first.body.data.products.pageInfo.endCursor);
  assert.deepEqual(second.body.data.products.nodes.map((n: { sku: string }) => n.sku), [expected[1].sku]);
  assert.deepEqual(second.body.data.products.pageInfo, { hasNextPage: false, endCursor: null });
  const all = await post(
    app,
    `{ products(filter: { category: "${category}" }) { nodes { sku inventory { available } } } }`,
  );
  const available = Object.fromEntries(
    all.body.data.products.nodes.map((n: { sku: string; inventory: { available: number } }) => [
      n.sku,
      n.inventory.available,
    ]),
  );
  assert.equal(all.body.data.products.nodes.length, 4);
  assert.equal(available[cheap.sku], 1);
  assert.equal(available[mid1.sku], 1);
  assert.equal(available[mid2.sku], 0);
});

Deno.test("a query over N products runs one products query and one stock query (DataLoader)", opts, async () => {
  const sql = await database();
  const category = `batch-${crypto.randomUUID().slice(0, 8)}`;
  const products = [];
  for (let i = 0; i < 8; i++) products.push(await insertProduct(sql, { category, stock: { onHand: i, reserved: 0 } }));
  const { app, statements, reset } = graphqlApp(sql, createMemoryCache());

  reset();
  const list = await post(
    app,
    `{ products(filter: { category: "${category}" }) { nodes { id inventory { onHand } } } }`,
  );
  assert.equal(list.body.data.products.nodes.length, 8);
  assert.equal(statements(), 2, "one page query plus one stock query for 8 products");

  reset();
  const aliases = products.map((p, i) => `p${i}: product(id: "${p.id}") { sku inventory { onHand } }`).join("\n");
  const byId = await post(app, `{ ${aliases} }`);
  assert.equal(byId.status, 200, byId.text);
  assert.deepEqual(byId.body.data.p7, { sku: products[7].sku, inventory: { onHand: 7 } });
  assert.equal(statements(), 2, "one products query plus one stock query for 8 aliased product(id)");

  reset();
  const again = await post(app, `{ ${aliases} }`);
  assert.deepEqual(again.body, byId.body);
  assert.equal(statements(), 0, "the second read is served from gql:product:{id}");
});

function cacheCount(text: string, result: string): number {
  const match = new RegExp(`bv_graphql_cache_requests_total\\{result="${result}"\\} (\\d+)`).exec(text);
  return match ? Number(match[1]) : 0;
}

Deno.test("product(id) is cached for 30 s in gql:product:{id}; the second read is a hit", opts, async () => {
  const sql = await database();
  const p = await insertProduct(sql, { stock: { onHand: 4, reserved: 1 } });
  const cache = createMemoryCache();
  const { app, statements, reset } = graphqlApp(sql, cache);
  const before = await metrics.render();
  const query = `{ product(id: "${p.id}") { name price inventory { available } } }`;
  const first = await post(app, query);
  assert.equal(first.body.data.product.inventory.available, 3);
  const ttl = await cache.ttlMs(gqlProductCacheKey(p.id));
  assert.ok(ttl > 0 && ttl <= GQL_PRODUCT_CACHE.TTL_MS, `ttl ${ttl}`);

  // Changed underneath: a hit still answers the cached aggregate, without touching SQL.
  await sql.query`update products set name = 'Renamed' where id = ${p.id}`;
  reset();
  const second = await post(app, query);
  assert.deepEqual(second.body, first.body);
  assert.equal(statements(), 0);
  const after = await metrics.render();
  assert.equal(cacheCount(after, "hit") - cacheCount(before, "hit"), 1);
  assert.equal(cacheCount(after, "miss") - cacheCount(before, "miss"), 1);

  // The catalog's invalidation deletes this very key when it consumes product.updated.
  assert.equal(catalogGqlKey(p.id), gqlProductCacheKey(p.id));
  await cache.del(catalogGqlKey(p.id));
  const third = await post(app, query);
  assert.equal(third.body.data.product.name, "Renamed");
});

Deno.test("a broken or garbage cache falls through to SQL", opts, async () => {
  const sql = await database();
  const p = await insertProduct(sql, { stock: { onHand: 2, reserved: 0 } });
  const cache = createMemoryCache();
  await cache.set(gqlProductCacheKey(p.id), "{not json");
  const broken = { ...cache, get: () => Promise.reject(new Error("ECONNREFUSED 127.0.0.1:6379")) };
  for (const c of [cache, broken]) {
    const reply = await post(graphqlApp(sql, c).app, `{ product(id: "${p.id}") { sku inventory { onHand } } }`);
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(reply.body.data.product, { sku: p.sku, inventory: { onHand: 2 } });
  }
});

Deno.test("a database failure is masked: generic message with a trace id, no table name", opts, async () => {
  const real = await database();
  const failing: Sql = {
    ...real,
    query: () =>
      Promise.reject(new SqlError('relation "inventory_stock" does not exist', "42P01", { table: "inventory_stock" })),
  };
  const app = createGraphqlRoutes({ sql: failing, cache: createMemoryCache() });
  const reply = await post(app, `{ product(id: "${crypto.randomUUID()}") { id } products { nodes { id } } }`);
  assert.ok(reply.status < 500, reply.text);
  assert.deepEqual(reply.body.data, { product: null, products: null });
  assert.equal(reply.body.errors.length, 2);
  for (const error of reply.body.errors) {
    assert.equal(error.extensions.code, "GRAPHQL.INTERNAL");
    assert.match(error.message, /^An unexpected error occurred; quote trace id "[0-9a-f]{32}"/);
    assert.match(error.extensions.traceId, /^[0-9a-f]{32}$/);
  }
  assert.doesNotMatch(reply.text, LEAKS);
});

Deno.test("inside the service app, a masked error carries the request's trace id", opts, async () => {
  const real = await database();
  const failing: Sql = { ...real, query: () => Promise.reject(new Error("connection terminated")) };
  const app = createServiceApp({ name: "ecommerce-test", checks: {} });
  app.route("/", createGraphqlRoutes({ sql: failing, cache: createMemoryCache() }));
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const reply = await replyOf(
    await app.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      body: JSON.stringify({ query: `{ product(id: "${crypto.randomUUID()}") { id } }` }),
    }),
  );
  assert.equal(reply.status, 200, reply.text);
  assert.equal(reply.body.errors[0].extensions.traceId, traceId);
  assert.match(reply.body.errors[0].message, new RegExp(traceId));
});

Deno.test("bad arguments answer 400 with the problem code and a message saying what to do", opts, async () => {
  const sql = await database();
  const { app } = graphqlApp(sql, createMemoryCache());
  const cases: [string, RegExp][] = [
    ["{ products(first: 500) { nodes { id } } }", /"first" is 500; use 1 to 100/],
    ["{ products(first: 0) { nodes { id } } }", /"first" is 0/],
    ['{ products(after: "garbage!") { nodes { id } } }', /Cursor "garbage!" is not valid/],
    [`{ products(filter: { q: "${"x".repeat(101)}" }) { nodes { id } } }`, /at most 100/],
  ];
  for (const [query, message] of cases) {
    const reply = await post(app, query);
    assert.equal(reply.status, 400, `${query}: ${reply.text}`);
    assert.equal(reply.body.errors[0].extensions.code, "COMMON.VALIDATION_FAILED");
    assert.match(reply.body.errors[0].message, message);
    assert.doesNotMatch(reply.text, LEAKS);
  }
});

Deno.test("GET /graphql runs queries; other methods answer 405", opts, async () => {
  const sql = await database();
  const p = await insertProduct(sql);
  const { app } = graphqlApp(sql, createMemoryCache());
  const url = `/graphql?query=${encodeURIComponent("query($id: ID!) { product(id: $id) { sku } }")}&variables=${
    encodeURIComponent(JSON.stringify({ id: p.id }))
  }`;
  const got = await replyOf(await app.request(url));
  assert.equal(got.status, 200, got.text);
  assert.deepEqual(got.body.data, { product: { sku: p.sku } });
  const put = await replyOf(await app.request("/graphql", { method: "PUT" }));
  assert.equal(put.status, 405);
  assert.equal(put.body.errors[0].extensions.code, "GRAPHQL.METHOD_NOT_ALLOWED");
});

Deno.test("the SDL documents the API without naming a table", () => {
  for (const type of ["type Product", "type InventoryInfo", "type ProductConnection", "input ProductFilter"]) {
    assert.ok(graphqlSchemaSdl.includes(type), type);
  }
  assert.match(graphqlSchemaSdl, /product\(id: ID!\): Product/);
  assert.match(
    graphqlSchemaSdl,
    /products\(filter: ProductFilter, first: Int = 20, after: String\): ProductConnection/,
  );
  assert.match(graphqlSchemaSdl, /productInventory\(id: ID!\): InventoryInfo/);
  assert.doesNotMatch(graphqlSchemaSdl, LEAKS);
});

Deno.test("close the shared database", opts, async () => {
  if (shared) await (await shared).close();
});
