import assert from "node:assert/strict";
import { rejectsWithProblem } from "../../../shared/testing/assert_problem.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { insertProduct, migrateForInventory, outboxStockEvents, stockRow } from "./_fixtures_for_test.ts";
import { applyStockAdjustment, getStockByProductIds, reserveStock } from "./mod.ts";

Deno.test({
  name: "[pglite] stock adjustments",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    await migrateForInventory(sql);
    try {
      await t.step("the first adjustment creates the stock row and announces stock.adjusted", async () => {
        const product = await insertProduct(sql);
        const { applied, stock } = await sql.transaction((tx) =>
          applyStockAdjustment(tx, { productId: product.id, delta: 12, reason: "delivery", source: "admin:u1" })
        );
        assert.equal(applied, true);
        assert.deepEqual(stock, { productId: product.id, sku: product.sku, onHand: 12, reserved: 0, available: 12 });
        const events = await outboxStockEvents(sql, product.id);
        assert.deepEqual(events, [{
          productId: product.id,
          sku: product.sku,
          delta: 12,
          reason: "delivery",
          onHand: 12,
          reserved: 0,
        }]);
        const ledger = await sql
          .query`select delta, reason, source from inventory_adjustment where product_id = ${product.id}`;
        assert.deepEqual(ledger, [{ delta: 12, reason: "delivery", source: "admin:u1" }]);
      });

      await t.step("an adjustment below zero or below the reserved units is refused and changes nothing", async () => {
        const product = await insertProduct(sql);
        await sql.transaction((tx) =>
          applyStockAdjustment(tx, { productId: product.id, delta: 5, reason: "count", source: "test" })
        );
        const belowZero = await rejectsWithProblem(
          sql.transaction((tx) =>
            applyStockAdjustment(tx, { productId: product.id, delta: -6, reason: "loss", source: "test" })
          ),
          "ECOMMERCE.STOCK_NEGATIVE",
        );
        assert.match(belowZero.message, /Cannot adjust ".+" by -6: 5 on hand and 0 reserved/);
        const outcome = await reserveStock(sql, {
          reservationId: crypto.randomUUID(),
          items: [{ productId: product.id, qty: 3 }],
          ttlSec: 60,
        });
        assert.deepEqual(outcome, { ok: true });
        await rejectsWithProblem(
          sql.transaction((tx) =>
            applyStockAdjustment(tx, { productId: product.id, delta: -3, reason: "loss", source: "test" })
          ),
          "ECOMMERCE.STOCK_NEGATIVE",
        );
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 3 });
        assert.equal((await outboxStockEvents(sql, product.id)).filter((e) => e.delta < 0).length, 0);
        // Down to exactly the reserved units is allowed.
        await sql.transaction((tx) =>
          applyStockAdjustment(tx, { productId: product.id, delta: -2, reason: "loss", source: "test" })
        );
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 3, reserved: 3 });
      });

      await t.step("a repeated message id is applied once", async () => {
        const product = await insertProduct(sql);
        const delta = { productId: product.id, delta: 4, reason: "SENSOR", source: "sensor:d1", messageId: "m-1" };
        const first = await sql.transaction((tx) => applyStockAdjustment(tx, delta));
        const again = await sql.transaction((tx) => applyStockAdjustment(tx, delta));
        assert.equal(first.applied, true);
        assert.equal(again.applied, false);
        assert.equal(again.stock.onHand, 4);
        assert.equal((await outboxStockEvents(sql, product.id)).length, 1);
      });

      await t.step("an unknown product and bad adjustments are 4xx problems", async () => {
        await rejectsWithProblem(
          sql.transaction((tx) =>
            applyStockAdjustment(tx, { productId: crypto.randomUUID(), delta: 1, reason: "x", source: "test" })
          ),
          "ECOMMERCE.PRODUCT_NOT_FOUND",
        );
        const product = await insertProduct(sql);
        for (
          const bad of [{ delta: 0 }, { delta: 1.5 }, { delta: 1_000_001 }, { reason: "" }, { reason: "x".repeat(201) }]
        ) {
          await rejectsWithProblem(
            sql.transaction((tx) =>
              applyStockAdjustment(tx, { productId: product.id, delta: 1, reason: "ok", source: "test", ...bad })
            ),
            "COMMON.VALIDATION_FAILED",
          );
        }
      });

      await t.step(
        "getStockByProductIds reads many products in one query, zero for products never counted",
        async () => {
          const counted = await insertProduct(sql);
          const never = await insertProduct(sql);
          await sql.transaction((tx) =>
            applyStockAdjustment(tx, { productId: counted.id, delta: 7, reason: "count", source: "test" })
          );
          const stock = await getStockByProductIds(sql, [counted.id, never.id, crypto.randomUUID(), "not-a-uuid"]);
          assert.deepEqual([...stock.keys()].sort(), [counted.id, never.id].sort());
          assert.deepEqual(stock.get(counted.id), {
            productId: counted.id,
            sku: counted.sku,
            onHand: 7,
            reserved: 0,
            available: 7,
          });
          assert.equal(stock.get(never.id)?.available, 0);
          assert.equal((await getStockByProductIds(sql, [])).size, 0);
        },
      );
    } finally {
      await sql.close();
    }
  },
});
