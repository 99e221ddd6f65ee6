import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { insertProduct, migrateForInventory, outboxStockEvents } from "./_fixtures_for_test.ts";
import { createInventoryRoutes, reserveStock } from "./mod.ts";

Deno.test({
  name: "[pglite] inventory REST: public reads, ADMIN adjustments",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    await migrateForInventory(sql);
    const tokens = await createTestTokens();
    let nudges = 0;
    const app = createInventoryRoutes({ sql, verifier: tokens.verifier, nudgeOutbox: () => nudges++ });
    const admin = await tokens.token("admin-1", ["ADMIN"]);
    const customer = await tokens.token("customer-1", ["CUSTOMER"]);
    const adjust = (productId: string, body: unknown, token?: string, contentType = "application/json") =>
      app.request(`/api/v1/inventory/${productId}/adjustments`, {
        method: "POST",
        headers: { "content-type": contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
    const problemCode = async (response: Response) => {
      assert.equal(response.headers.get("content-type"), "application/problem+json");
      return (await response.json()).code;
    };
    try {
      await t.step("an ADMIN adjustment answers the new stock and announces it", async () => {
        const product = await insertProduct(sql);
        const response = await adjust(product.id, { delta: 25, reason: "Delivery from supplier" }, admin);
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), {
          productId: product.id,
          sku: product.sku,
          onHand: 25,
          reserved: 0,
          available: 25,
        });
        assert.equal(nudges, 1);
        const [event] = await outboxStockEvents(sql, product.id);
        assert.deepEqual(event, {
          productId: product.id,
          sku: product.sku,
          delta: 25,
          reason: "Delivery from supplier",
          onHand: 25,
          reserved: 0,
        });
        const [ledger] = await sql.query`select source from inventory_adjustment where product_id = ${product.id}`;
        assert.equal(ledger.source, "admin:admin-1");

        await reserveStock(sql, {
          reservationId: crypto.randomUUID(),
          items: [{ productId: product.id, qty: 5 }],
          ttlSec: 60,
        });
        const read = await app.request(`/api/v1/inventory/${product.id}`);
        assert.equal(read.status, 200);
        assert.deepEqual(await read.json(), {
          productId: product.id,
          sku: product.sku,
          onHand: 25,
          reserved: 5,
          available: 20,
        });
      });

      await t.step("an adjustment below the reserved units is 409 ECOMMERCE.STOCK_NEGATIVE", async () => {
        const product = await insertProduct(sql);
        await adjust(product.id, { delta: 3, reason: "count" }, admin);
        await reserveStock(sql, {
          reservationId: crypto.randomUUID(),
          items: [{ productId: product.id, qty: 2 }],
          ttlSec: 60,
        });
        const response = await adjust(product.id, { delta: -2, reason: "broken" }, admin);
        assert.equal(response.status, 409);
        assert.equal(await problemCode(response), "ECOMMERCE.STOCK_NEGATIVE");
        const first = await adjust(crypto.randomUUID(), { delta: -1, reason: "x" }, admin);
        assert.equal(first.status, 404);
        const stock = await (await app.request(`/api/v1/inventory/${product.id}`)).json();
        assert.deepEqual([stock.onHand, stock.reserved], [3, 2]);
      });

      await t.step("adjustments need a token with the ADMIN role", async () => {
        const product = await insertProduct(sql);
        const anonymous = await adjust(product.id, { delta: 1, reason: "x" });
        assert.equal(anonymous.status, 401);
        assert.equal(await problemCode(anonymous), "AUTH.UNAUTHENTICATED");
        const notAdmin = await adjust(product.id, { delta: 1, reason: "x" }, customer);
        assert.equal(notAdmin.status, 403);
        assert.equal(await problemCode(notAdmin), "AUTH.FORBIDDEN");
        const forged = await adjust(product.id, { delta: 1, reason: "x" }, `${admin.slice(0, -4)}AAAA`);
        assert.equal(forged.status, 401);
        assert.equal((await outboxStockEvents(sql, product.id)).length, 0);
      });

      await t.step("bad bodies are 4xx problems and change nothing", async () => {
        const product = await insertProduct(sql);
        const cases: [unknown, number, string][] = [
          [{ delta: 0, reason: "x" }, 400, "COMMON.VALIDATION_FAILED"],
          [{ delta: 1.5, reason: "x" }, 400, "COMMON.VALIDATION_FAILED"],
          [{ delta: 1_000_001, reason: "x" }, 400, "COMMON.VALIDATION_FAILED"],
          [{ delta: "5", reason: "x" }, 400, "COMMON.VALIDATION_FAILED"],
          [{ delta: 1, reason: "x".repeat(201) }, 400, "COMMON.VALIDATION_FAILED"],
          [{ delta: 1 }, 400, "COMMON.VALIDATION_FAILED"],
          [{ delta: 1, reason: "x", sku: "other" }, 400, "COMMON.VALIDATION_FAILED"],
          ["{not json", 400, "COMMON.MALFORMED_JSON"],
        ];
        for (const [body, status, code] of cases) {
          const response = await adjust(product.id, body, admin);
          assert.equal(response.status, status, JSON.stringify(body));
          assert.equal(await problemCode(response), code);
        }
        const wrongType = await adjust(product.id, { delta: 1, reason: "x" }, admin, "text/plain");
        assert.equal(wrongType.status, 415);
        const notUuid = await adjust("not-a-uuid", { delta: 1, reason: "x" }, admin);
        assert.equal(notUuid.status, 404);
        assert.equal((await outboxStockEvents(sql, product.id)).length, 0);
      });

      await t.step("reads are public: zero for a product never counted, 404 for an unknown one", async () => {
        const product = await insertProduct(sql);
        const never = await app.request(`/api/v1/inventory/${product.id}`);
        assert.deepEqual(await never.json(), {
          productId: product.id,
          sku: product.sku,
          onHand: 0,
          reserved: 0,
          available: 0,
        });
        for (const id of [crypto.randomUUID(), "not-a-uuid", "x".repeat(300)]) {
          const response = await app.request(`/api/v1/inventory/${id}`);
          assert.equal(response.status, 404);
          assert.equal(await problemCode(response), "ECOMMERCE.PRODUCT_NOT_FOUND");
        }
      });
    } finally {
      await sql.close();
    }
  },
});
