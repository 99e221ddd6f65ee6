import assert from "node:assert/strict";
import fc from "fast-check";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { catalogMigrations, createCatalogRoutes } from "../catalog/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { cartMigrations, createCartRoutes } from "./mod.ts";

const weird = fc.oneof(
  fc.jsonValue(),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ minLength: 1_000, maxLength: 5_000 }),
  fc.integer({ min: -2_000, max: 2_000 }),
  fc.double(),
  fc.constantFrom(0, -1, 1001, 2 ** 31, 2 ** 53, 1e308, -0, 0.5, "1", null, true, [], {}, "a\u0000"),
);

Deno.test({
  name: "cart routes answer 2xx or 4xx problem+json for any body and path, never 5xx",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    try {
      await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...cartMigrations]);
      const tokens = await createTestTokens();
      const [admin, user] = [await tokens.token("admin", ["ADMIN"]), await tokens.token("prop-user")];
      const catalog = createCatalogRoutes({
        sql,
        cache: createMemoryCache(),
        verifier: tokens.verifier,
        nudgeOutbox() {},
      });
      const app = createCartRoutes({ sql, verifier: tokens.verifier });
      const json = (token: string) => ({ authorization: `Bearer ${token}`, "content-type": "application/json" });
      const product = await (await catalog.request("/api/v1/products", {
        method: "POST",
        headers: json(admin),
        body: JSON.stringify({ sku: "CART-PROP", name: "n", category: "c", price: "2.50", currency: "EUR" }),
      })).json();
      const cart = await (await app.request("/api/v1/carts", { method: "POST", headers: json(user) })).json();

      const body = fc.oneof(
        fc.record({ productId: fc.oneof(fc.constant(product.id), weird), qty: weird }).map((b) => JSON.stringify(b)),
        fc.record({ qty: weird }).map((b) => JSON.stringify(b)),
        fc.record({ productId: fc.constant(product.id), qty: fc.integer({ min: 1, max: 5 }), extra: weird }).map((b) =>
          JSON.stringify(b)
        ),
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.string({ maxLength: 100 }),
      );
      const segment = fc.oneof(
        fc.constant(cart.id),
        fc.constant(product.id),
        fc.uuid(),
        fc.string({ minLength: 1, maxLength: 60 }),
        fc.string({ unit: "binary", minLength: 1, maxLength: 20 }),
      ).map(encodeURIComponent);
      const route = fc.oneof(
        fc.record({ m: fc.constant("POST"), a: fc.constant(cart.id), b: segment }).map((r) =>
          [r.m, `/api/v1/carts/${r.a}/items`] as const
        ),
        fc.record({ a: segment }).map((r) => ["POST", `/api/v1/carts/${r.a}/items`] as const),
        fc.record({ m: fc.constantFrom("PUT", "DELETE"), a: fc.oneof(fc.constant(cart.id), segment), b: segment })
          .map((r) => [r.m, `/api/v1/carts/${r.a}/items/${r.b}`] as const),
        fc.record({ a: segment }).map((r) => ["GET", `/api/v1/carts/${r.a}`] as const),
        fc.constant(["POST", "/api/v1/carts"] as const),
      );
      await fc.assert(
        fc.asyncProperty(route, body, async ([method, path], text) => {
          const res = await app.request(path, {
            method,
            headers: json(user),
            body: method === "GET" ? undefined : text,
          });
          const answer = await res.text();
          assert.ok(res.status < 500, `${method} ${path} ${text.slice(0, 80)} answered ${res.status}: ${answer}`);
          if (res.status >= 400) assert.equal(res.headers.get("content-type"), "application/problem+json");
        }),
        { numRuns: 400 },
      );
      const final = await app.request(`/api/v1/carts/${cart.id}`, { headers: json(user) });
      assert.equal(final.status, 200);
    } finally {
      await sql.close();
    }
  },
});
