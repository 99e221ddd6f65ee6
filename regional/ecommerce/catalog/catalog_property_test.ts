import assert from "node:assert/strict";
import fc from "fast-check";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { catalogMigrations, createCatalogRoutes } from "./mod.ts";

/** Answers must be 2xx, or 4xx problem+json: never a 5xx, whatever the client sends. */
async function assertNot5xx(res: Response, what: string): Promise<void> {
  const text = await res.text();
  assert.ok(res.status < 500, `${what} answered ${res.status}: ${text.slice(0, 300)}`);
  if (res.status >= 400) assert.equal(res.headers.get("content-type"), "application/problem+json", what);
}

const validProduct = {
  sku: "PROP-1",
  name: "Name",
  description: "",
  category: "cat",
  price: "1.00",
  currency: "EUR",
};

const weirdValue = fc.oneof(
  fc.jsonValue(),
  fc.string({ minLength: 0, maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("a\u0000b", "\ud800", "\u202e"),
  fc.string({ minLength: 200, maxLength: 6_000 }),
  fc.double().map(String),
  fc.double({ noNaN: true }),
  fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map(String),
  fc.integer().map((n) => `-${Math.abs(n)}.00`),
  fc.constantFrom("0", "0.00", "-1", "1e3", "１２", "99999999999.99", "1.001", " 1.00", null, true, [], {}),
);

/** Bodies close to valid (one field broken, one unknown field) and far from it (any JSON, any text). */
const bodyText = fc.oneof(
  fc.record({ field: fc.constantFrom(...Object.keys(validProduct), "extra"), value: weirdValue }).map(
    ({ field, value }) => JSON.stringify({ ...validProduct, sku: `P-${crypto.randomUUID()}`, [field]: value }),
  ),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom("", "{", "[1,", '{"sku":', "null", "\u0000", '{"__proto__":{"admin":true}}'),
);

const contentType = fc.constantFrom("application/json", "application/merge-patch+json", "text/plain", undefined);

Deno.test({
  name: "catalog writes answer 2xx or 4xx problem+json for any body, never 5xx",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    try {
      await migrate(sql, [...outboxMigrations, ...catalogMigrations]);
      const tokens = await createTestTokens();
      const admin = await tokens.token("admin", ["ADMIN"]);
      const app = createCatalogRoutes({ sql, cache: createMemoryCache(), verifier: tokens.verifier, nudgeOutbox() {} });
      const created = await app.request("/api/v1/products", {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify(validProduct),
      });
      const { id } = await created.json();
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("POST /api/v1/products", `PUT /api/v1/products/${id}`, `PATCH /api/v1/products/${id}`),
          bodyText,
          contentType,
          async (route, body, type) => {
            const [method, path] = route.split(" ");
            const headers: Record<string, string> = { authorization: `Bearer ${admin}` };
            if (type) headers["content-type"] = type;
            await assertNot5xx(await app.request(path, { method, headers, body }), `${route} ${body.slice(0, 80)}`);
          },
        ),
        { numRuns: 300 },
      );
      const huge = await app.request("/api/v1/products", {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify({ ...validProduct, description: "x".repeat(1_100_000) }),
      });
      assert.equal(huge.status, 413);
    } finally {
      await sql.close();
    }
  },
});

Deno.test({
  name: "catalog reads answer 2xx or 4xx problem+json for any id and query, never 5xx",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    try {
      await migrate(sql, [...outboxMigrations, ...catalogMigrations]);
      const tokens = await createTestTokens();
      const app = createCatalogRoutes({ sql, cache: createMemoryCache(), verifier: tokens.verifier, nudgeOutbox() {} });
      const param = fc.oneof(fc.string({ maxLength: 120 }), fc.constantFrom("-1", "0", "1e9", "NaN", "%", "_", "\\"));
      await fc.assert(
        fc.asyncProperty(
          fc.dictionary(
            fc.constantFrom("q", "category", "minPrice", "maxPrice", "limit", "cursor", "sort"),
            param,
            { maxKeys: 4 },
          ),
          async (query) => {
            const url = `/api/v1/products?${new URLSearchParams(query)}`;
            await assertNot5xx(await app.request(url), url);
          },
        ),
        { numRuns: 300 },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(fc.string({ minLength: 1, maxLength: 80 }), fc.string({ unit: "binary", minLength: 1 }), fc.uuid()),
          async (id) => {
            const encoded = encodeURIComponent(id);
            await assertNot5xx(await app.request(`/api/v1/products/${encoded}`), id);
            await assertNot5xx(await app.request(`/api/v1/products/${encoded}/price-history`), id);
          },
        ),
        { numRuns: 200 },
      );
    } finally {
      await sql.close();
    }
  },
});
