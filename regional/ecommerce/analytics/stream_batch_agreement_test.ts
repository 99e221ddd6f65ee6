import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Role } from "../../../shared/auth/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { cartMigrations } from "../cart/mod.ts";
import { catalogMigrations } from "../catalog/mod.ts";
import type { PaymentGateway, StockReservations } from "../contracts.ts";
import { createOrderRoutes, ordersMigrations } from "../orders/mod.ts";
import { outboxMigrations, startOutboxRelay } from "../outbox/mod.ts";
import { waitForProcessed } from "./_fixtures_for_test.ts";
import { analyticsMigrations, createAnalyticsRoutes, runDailySales, startRevenueProjection } from "./mod.ts";

/** Stock that always reserves; payments approved unless the next one is told to decline. */
const stock: StockReservations = {
  reserve: () => Promise.resolve({ ok: true }),
  release: () => Promise.resolve(),
  confirm: () => Promise.resolve(),
  commit: () => Promise.resolve(),
};
let declineNext = false;
const payments: PaymentGateway = {
  charge: () => {
    const decline = declineNext;
    declineNext = false;
    return Promise.resolve(
      decline
        ? { status: "DECLINED", reason: "insufficient funds", via: "soap" }
        : { status: "APPROVED", authCode: "A-1", via: "soap" },
    );
  },
};

Deno.test({
  name: "[pglite+memory] the streaming windows of a day add up to what the daily batch computes from the orders",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    const eventLog = createMemoryEventLog();
    await migrate(sql, [
      ...outboxMigrations,
      ...catalogMigrations,
      ...cartMigrations,
      ...ordersMigrations,
      ...analyticsMigrations,
    ]);
    const relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 20 });
    const projection = await startRevenueProjection({ sql, eventLog, region: "east" });
    try {
      await projection.ready;
      const apple = crypto.randomUUID();
      const euro = crypto.randomUUID();
      await sql.query`
        insert into products (id, sku, name, description, category, price, currency) values
          (${apple}::uuid, ${`apple-${apple}`}, 'apple', '', 'fruit', 25.00, 'USD'),
          (${euro}::uuid, ${`euro-${euro}`}, 'euro', '', 'fruit', 3.00, 'EUR')`;
      const tokens = await createTestTokens();
      const orders = createOrderRoutes({
        sql,
        verifier: tokens.verifier,
        stock,
        payments,
        nudgeOutbox: () => relay.nudge(),
        reservationTtlSec: 60,
        // A hold of 60 s needs payments bounded well within it (orders start a charge only if it can finish).
        stockTimeoutMs: 2_000,
        paymentTimeoutMs: 2_000,
      });
      const post = async (app: Hono, path: string, body: unknown, roles: readonly Role[] = ["CUSTOMER"]) => {
        const response = await app.request(path, {
          method: "POST",
          headers: {
            authorization: `Bearer ${await tokens.token(roles.includes("ADMIN") ? "admin" : "alice", roles)}`,
            "idempotency-key": crypto.randomUUID(),
            "content-type": "application/json",
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        return { status: response.status, body: await response.json() };
      };
      const place = async (productId: string, qty: number): Promise<string> =>
        (await post(orders, "/api/v1/orders", { items: [{ productId, qty }] })).body.id;

      const paid = await place(apple, 2); // 50.00 USD, counts
      assert.equal((await post(orders, `/api/v1/orders/${paid}/pay`, undefined)).status, 200);
      const refunded = await place(euro, 3); // 9.00 EUR, paid then canceled by an admin: nets to zero
      assert.equal((await post(orders, `/api/v1/orders/${refunded}/pay`, undefined)).status, 200);
      const cancel = await post(orders, `/api/v1/orders/${refunded}/cancel`, { reason: "refund" }, ["ADMIN"]);
      assert.equal(cancel.status, 200);
      declineNext = true;
      const declined = await place(apple, 1); // declined: canceled before payment, never counts
      assert.equal((await post(orders, `/api/v1/orders/${declined}/pay`, undefined)).status, 402);
      const abandoned = await place(apple, 1); // canceled by its customer before payment
      assert.equal((await post(orders, `/api/v1/orders/${abandoned}/cancel`, undefined)).status, 200);
      const small = await place(apple, 1); // 25.00 USD, counts
      assert.equal((await post(orders, `/api/v1/orders/${small}/pay`, undefined)).status, 200);
      await waitForProcessed(sql, 6);

      // Both paths book by UTC day; a run straddling midnight UTC could split the orders (once a day, for ms).
      // Today is not settled: every transaction of this test has committed, so the provisional figure is whole.
      const today = new Date().toISOString().slice(0, 10);
      const batch = await runDailySales(sql, { date: today, allowUnsettled: true });
      assert.deepEqual(batch.map((r) => [r.currency, r.revenue, r.orders]), [["EUR", "0.00", 0], ["USD", "75.00", 2]]);
      const analytics = createAnalyticsRoutes({ sql, verifier: tokens.verifier });
      const response = await analytics.request(
        `/api/v1/analytics/revenue?from=${today}T00:00:00Z&to=${today}T23:59:59.999Z`,
        { headers: { authorization: `Bearer ${await tokens.token("admin", ["ADMIN"])}` } },
      );
      assert.equal(response.status, 200);
      const streamed = (await response.json()).totals as { currency: string; revenue: string; orders: number }[];
      assert.deepEqual(
        streamed.map((r) => [r.currency, r.revenue, r.orders]),
        batch.map((r) => [r.currency, r.revenue, r.orders]),
      );
    } finally {
      await projection.close();
      await relay.stop();
      await eventLog.close();
      await sql.close();
    }
  },
});
