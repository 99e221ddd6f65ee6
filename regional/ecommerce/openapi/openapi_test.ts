import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { createCartRoutes } from "../cart/mod.ts";
import { createCatalogRoutes } from "../catalog/mod.ts";
import { createOpenApiRoutes, OPENAPI_DOCS_PATH, OPENAPI_DOCUMENT_PATH, type OpenApiDocument } from "./mod.ts";

/** Route factories do not touch the database while registering routes; any call fails loudly. */
const unused = () => Promise.reject(new Error("the route listing must not touch the database"));
const unusedSql: Sql = { query: unused, exec: unused, transaction: unused, ping: unused, close: unused };

/** "GET /api/v1/products/{id}" for every handler route of `app` (middleware, method ALL, excluded). */
function routesOf(app: Hono): string[] {
  return [
    ...new Set(
      app.routes.filter((r) => r.method !== "ALL").map((r) =>
        `${r.method} ${r.path.replace(/:([A-Za-z_]+)/g, "{$1}")}`
      ),
    ),
  ].sort();
}

function documented(doc: OpenApiDocument, prefix: string): string[] {
  return Object.entries(doc.paths)
    .filter(([path]) => path.startsWith(prefix))
    .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();
}

async function served(): Promise<OpenApiDocument> {
  const res = await createOpenApiRoutes().request(OPENAPI_DOCUMENT_PATH);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  return JSON.parse(await res.text());
}

Deno.test("GET /api/v1/ecommerce/openapi.json serves a parseable OpenAPI 3.x document whose refs resolve", async () => {
  const doc = await served();
  assert.match(doc.openapi, /^3\.\d+\.\d+$/);
  assert.ok(doc.info.title.length > 0);
  const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([A-Za-z]+)"/g)].map((m) => m[1]);
  assert.ok(refs.length > 10);
  for (const name of refs) assert.ok(name in doc.components.schemas, `schema ${name} is defined`);
  const operationIds = Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op!.operationId));
  assert.equal(new Set(operationIds).size, operationIds.length, "operation ids are unique");
  for (const [path, item] of Object.entries(doc.paths)) {
    const placeholders = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const op of Object.values(item)) {
      const declared = (op!.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name).sort();
      assert.deepEqual(declared, placeholders, `path parameters of ${op!.operationId}`);
    }
  }
});

Deno.test("the document lists exactly the catalog and cart routes the apps register", async () => {
  const doc = await served();
  const tokens = await createTestTokens();
  const catalog = createCatalogRoutes({
    sql: unusedSql,
    cache: createMemoryCache(),
    verifier: tokens.verifier,
    nudgeOutbox: () => {},
  });
  const cart = createCartRoutes({ sql: unusedSql, verifier: tokens.verifier });
  assert.deepEqual(documented(doc, "/api/v1/products"), routesOf(catalog));
  assert.deepEqual(documented(doc, "/api/v1/carts"), routesOf(cart));
  assert.equal(routesOf(catalog).length, 6);
  assert.equal(routesOf(cart).length, 6);
});

/** Contexts written by other engineers: compared when their module is present. */
const siblingContexts = [
  { name: "inventory", prefix: "/api/v1/inventory", factory: "createInventoryRoutes" },
  { name: "orders", prefix: "/api/v1/orders", factory: "createOrderRoutes" },
] as const;

for (const sibling of siblingContexts) {
  const modUrl = new URL(`../${sibling.name}/mod.ts`, import.meta.url);
  Deno.test({
    name: `the document lists exactly the ${sibling.name} routes the app registers`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const doc = await served();
      const tokens = await createTestTokens();
      const mod = await import(modUrl.href);
      const stub = new Proxy({}, { get: () => () => Promise.resolve() });
      const app: Hono = mod[sibling.factory]({
        sql: unusedSql,
        verifier: tokens.verifier,
        nudgeOutbox: () => {},
        stock: stub,
        payments: stub,
      });
      assert.deepEqual(documented(doc, sibling.prefix), routesOf(app));
    },
  });
}

Deno.test("GET /api/v1/ecommerce/docs renders the Scalar reference pointing at the document", async () => {
  const res = await createOpenApiRoutes().request(OPENAPI_DOCS_PATH);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
  const html = await res.text();
  assert.ok(html.includes(OPENAPI_DOCUMENT_PATH), "the page loads our document");
  assert.match(html, /<script/);
});
