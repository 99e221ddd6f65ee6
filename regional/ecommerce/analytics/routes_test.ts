import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { analyticsMigrations, createAnalyticsRoutes } from "./mod.ts";

Deno.test({
  name: "[pglite] GET /api/v1/analytics/revenue answers ADMINs with bounded, validated ranges",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    try {
      await migrate(sql, analyticsMigrations);
      await sql.exec(`
        insert into revenue_minute (window_start, currency, revenue, orders, updated_at) values
          ('2025-03-01T10:00:00Z', 'USD', 149.75, 2, now()),
          ('2025-03-01T10:00:00Z', 'EUR', 15, 1, now()),
          ('2025-03-01T10:03:00Z', 'USD', -129.5, -1, now()),
          ('2025-03-01T11:00:00Z', 'USD', 1, 1, now())`);
      const tokens = await createTestTokens();
      const admin = { authorization: `Bearer ${await tokens.token("admin-1", ["ADMIN"])}` };
      const app = createAnalyticsRoutes({
        sql,
        verifier: tokens.verifier,
        now: () => new Date("2025-03-01T10:30:15Z"),
      });
      const get = (query: string, headers: Record<string, string> = admin) =>
        app.request(`/api/v1/analytics/revenue${query}`, { headers });

      await t.step("windows in [from, to) come back oldest first with decimal strings and totals", async () => {
        const response = await get("?from=2025-03-01T10:00:00Z&to=2025-03-01T11:00:00Z");
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), {
          from: "2025-03-01T10:00:00.000Z",
          to: "2025-03-01T11:00:00.000Z",
          currency: null,
          windows: [
            { windowStart: "2025-03-01T10:00:00.000Z", currency: "EUR", revenue: "15.00", orders: 1 },
            { windowStart: "2025-03-01T10:00:00.000Z", currency: "USD", revenue: "149.75", orders: 2 },
            { windowStart: "2025-03-01T10:03:00.000Z", currency: "USD", revenue: "-129.50", orders: -1 },
          ],
          totals: [
            { currency: "EUR", revenue: "15.00", orders: 1 },
            { currency: "USD", revenue: "20.25", orders: 1 },
          ],
        });
      });

      await t.step("currency narrows the answer; the default range is the hour up to this minute", async () => {
        const usd = await (await get("?currency=EUR&from=2025-03-01T09:00:00%2B00:00")).json();
        assert.deepEqual(usd.windows.map((w: { currency: string }) => w.currency), ["EUR"]);
        const recent = await (await get("")).json();
        assert.equal(recent.from, "2025-03-01T09:31:00.000Z");
        assert.equal(recent.to, "2025-03-01T10:31:00.000Z");
        assert.equal(recent.windows.length, 3);
      });

      await t.step("no token is 401, a CUSTOMER is 403", async () => {
        const anonymous = await get("", {});
        assert.equal(anonymous.status, 401);
        assert.equal((await anonymous.json()).code, "AUTH.UNAUTHENTICATED");
        const customer = await get("", { authorization: `Bearer ${await tokens.token("c-1", ["CUSTOMER"])}` });
        assert.equal(customer.status, 403);
        assert.equal((await customer.json()).code, "AUTH.FORBIDDEN");
      });

      await t.step("bad queries are 400 problems that say what to send", async () => {
        const cases: [string, RegExp][] = [
          ["?from=yesterday", /from: .*ISO 8601/],
          ["?currency=usd", /currency: an ISO 4217 code/],
          ["?limit=5", /use from, to and currency/],
          ["?from=2025-03-01T11:00:00Z&to=2025-03-01T10:00:00Z", /must be before "to"/],
          ["?from=2025-02-01T00:00:00Z&to=2025-03-01T00:00:00Z", /longer than 7 days/],
          // PostgreSQL refuses year 0000 (SQLSTATE 22008): refused here as a 400, not a database error.
          [
            "?from=0000-01-01T00:00:00Z&to=0000-01-01T01:00:00Z",
            /"to" \("0000-01-01T01:00:00Z"\) must lie in the years 1970 to 9999/,
          ],
          ["?from=0000-01-01T00:00:00Z&to=1970-01-01T01:00:00Z", /"from" .* must lie in the years 1970 to 9999/],
          ["?from=9999-12-31T23:00:00Z&to=9999-12-31T23:30:00-01:00", /"to" .* must lie in the years 1970 to 9999/],
        ];
        for (const [query, detail] of cases) {
          const response = await get(query);
          assert.equal(response.status, 400, query);
          assert.equal(response.headers.get("content-type"), "application/problem+json");
          const body = await response.json();
          assert.equal(body.code, "COMMON.VALIDATION_FAILED");
          assert.match(body.detail, detail, query);
        }
      });

      await t.step("the last hour of year 9999 is a valid, empty range", async () => {
        const response = await get("?from=9999-12-31T23:00:00Z&to=9999-12-31T23:59:59.999Z");
        assert.equal(response.status, 200);
        const body = await response.json();
        assert.equal(body.to, "9999-12-31T23:59:59.999Z");
        assert.deepEqual(body.windows, []);
      });

      await t.step("an answer over 20,160 windows is refused unless a currency narrows it", async () => {
        await sql.exec(`
          insert into revenue_minute (window_start, currency, revenue, orders, updated_at)
          select minute, currency, 1, 1, now()
          from generate_series('2025-04-01T00:00:00Z'::timestamptz, '2025-04-07T23:59:00Z', interval '1 minute') minute,
               unnest(array['USD', 'EUR', 'GBP']) currency`);
        const week = "?from=2025-04-01T00:00:00Z&to=2025-04-08T00:00:00Z";
        const all = await get(week);
        assert.equal(all.status, 400);
        assert.match((await all.json()).detail, /more than 20160 windows; narrow "from"\/"to" or pass "currency"/);
        const usd = await (await get(`${week}&currency=USD`)).json();
        assert.equal(usd.windows.length, 7 * 24 * 60);
        assert.deepEqual(usd.totals, [{ currency: "USD", revenue: "10080.00", orders: 10_080 }]);
      });
    } finally {
      await sql.close();
    }
  },
});
