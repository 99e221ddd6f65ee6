import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { ordersMigrations } from "../orders/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import {
  analyticsMigrations,
  DAY_SETTLE_MS,
  DayNotSettledError,
  readDailySales,
  runDailySales,
  utcDayOf,
  yesterdayUtc,
} from "./mod.ts";

type Move = readonly [from: string | null, to: string, at: string];

/** An order with its status history, as the order context writes them. */
async function order(sql: Sql, total: string, currency: string, moves: readonly Move[]): Promise<void> {
  const id = crypto.randomUUID();
  const last = moves.at(-1)!;
  await sql.query`
    insert into orders (id, user_id, status, total_amount, currency, created_at, updated_at)
    values (${id}::uuid, 'u-1', ${last[1]}, ${total}::numeric, ${currency}, ${new Date(moves[0][2])},
            ${new Date(last[2])})`;
  for (const [from, to, at] of moves) {
    await sql.query`
      insert into order_status_history (order_id, from_status, to_status, reason, actor, at)
      values (${id}::uuid, ${from}, ${to}, 'test', 'u-1', ${new Date(at)})`;
  }
}

const placed = (at: string): Move => [null, "PENDING", at];

Deno.test({
  name: "[pglite] the daily sales batch sums one UTC day from the orders tables and re-running replaces it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    try {
      await migrate(sql, [...outboxMigrations, ...ordersMigrations, ...analyticsMigrations]);
      await order(sql, "100.00", "USD", [placed("2025-03-01T08:59:00Z"), ["RESERVED", "PAID", "2025-03-01T09:00:00Z"]]);
      // Paid the day before, canceled (refunded) on the day: taken back on the day.
      await order(sql, "50.00", "USD", [
        placed("2025-02-28T23:58:00Z"),
        ["RESERVED", "PAID", "2025-02-28T23:59:00Z"],
        ["PAID", "CANCELED", "2025-03-01T01:00:00Z"],
      ]);
      await order(sql, "30.00", "EUR", [placed("2025-03-01T10:00:00Z"), ["RESERVED", "PAID", "2025-03-01T10:00:01Z"]]);
      // Canceled before payment: never revenue.
      await order(sql, "70.00", "USD", [placed("2025-03-01T11:00:00Z"), [
        "RESERVED",
        "CANCELED",
        "2025-03-01T11:01:00Z",
      ]]);
      await order(sql, "20.00", "USD", [
        placed("2025-03-01T23:59:00Z"),
        ["RESERVED", "PAID", "2025-03-01T23:59:59.999Z"],
      ]);
      await order(sql, "9.00", "USD", [placed("2025-03-01T23:59:00Z"), ["RESERVED", "PAID", "2025-03-02T00:00:00Z"]]);
      const expected = [
        { date: "2025-03-01", currency: "EUR", revenue: "30.00", orders: 1 },
        { date: "2025-03-01", currency: "USD", revenue: "70.00", orders: 1 },
      ];

      await t.step("a day counts payments on it and takes back payments canceled on it", async () => {
        assert.deepEqual(await runDailySales(sql, { date: "2025-03-01" }), expected);
        assert.deepEqual(await readDailySales(sql, "2025-03-01"), expected);
      });

      await t.step("running the same day again gives the same rows, not twice the revenue", async () => {
        assert.deepEqual(await runDailySales(sql, { date: "2025-03-01" }), expected);
        const [{ n }] = await sql.query<{ n: number }>`select count(*)::int as n from daily_sales`;
        assert.equal(n, 2);
      });

      await t.step("a re-run picks up corrected source data and leaves other days alone", async () => {
        assert.deepEqual(await runDailySales(sql, { date: "2025-03-02" }), [
          { date: "2025-03-02", currency: "USD", revenue: "9.00", orders: 1 },
        ]);
        await order(sql, "0.50", "USD", [placed("2025-03-01T12:00:00Z"), ["RESERVED", "PAID", "2025-03-01T12:00:05Z"]]);
        const rerun = await runDailySales(sql, { date: "2025-03-01" });
        assert.deepEqual(rerun[1], { date: "2025-03-01", currency: "USD", revenue: "70.50", orders: 2 });
        assert.equal((await readDailySales(sql, "2025-03-02")).length, 1);
      });

      await t.step("a day without sales ends with no rows", async () => {
        assert.deepEqual(await runDailySales(sql, { date: "2025-02-27" }), []);
      });

      await t.step(
        "a day is refused until it is settled, so a payment committed after midnight is not missed",
        async () => {
          const at = (iso: string) => () => new Date(iso);
          await order(sql, "5.00", "USD", [placed("2025-03-03T23:59:00Z"), [
            "RESERVED",
            "PAID",
            "2025-03-03T23:59:30Z",
          ]]);
          const early = await runDailySales(sql, { date: "2025-03-03", now: at("2025-03-04T00:00:05Z") }).then(
            () => assert.fail("an unsettled day was summarised"),
            (error) => error,
          );
          assert.ok(early instanceof DayNotSettledError, String(early));
          assert.equal(early.settlesAt.toISOString(), "2025-03-04T00:05:00.000Z");
          assert.match(
            early.message,
            /^Day "2025-03-03" cannot be summarised before 2025-03-04T00:05:00.000Z \(its end plus 5 min\)/,
          );
          assert.deepEqual(await readDailySales(sql, "2025-03-03"), [], "a refused run writes nothing");
          await assert.rejects(
            runDailySales(sql, { date: "2025-03-03", now: at("2025-03-04T00:04:59.999Z") }),
            DayNotSettledError,
          );
          // Who accepts a provisional figure gets one, without the payment whose transaction commits late.
          const provisional = await runDailySales(sql, {
            date: "2025-03-03",
            now: at("2025-03-04T00:00:05Z"),
            allowUnsettled: true,
          });
          assert.deepEqual(provisional.map((r) => r.revenue), ["5.00"]);
          // Stamped 23:59:59.900 by the app clock, committed after the provisional run.
          await order(sql, "7.00", "USD", [placed("2025-03-03T23:59:50Z"), [
            "RESERVED",
            "PAID",
            "2025-03-03T23:59:59.900Z",
          ]]);
          const settled = await runDailySales(sql, { date: "2025-03-03", now: at("2025-03-04T00:05:00Z") });
          assert.deepEqual(settled, [{ date: "2025-03-03", currency: "USD", revenue: "12.00", orders: 2 }]);
          assert.equal(DAY_SETTLE_MS, 5 * 60_000);
          await assert.rejects(
            runDailySales(sql, { date: "2025-03-03", now: at("2025-03-04T00:00:30Z"), settleMs: 60_000 }),
            /before 2025-03-04T00:01:00.000Z \(its end plus 1 min\)/,
          );
        },
      );

      await t.step("a date that is not YYYY-MM-DD on the calendar is a RangeError naming it", async () => {
        await assert.rejects(runDailySales(sql, { date: "2025-02-30" }), /Date "2025-02-30" is not a calendar date/);
        assert.throws(() => utcDayOf("1/3/2025"), RangeError);
        assert.equal(yesterdayUtc(new Date("2025-03-01T00:30:00Z")), "2025-02-28");
      });
    } finally {
      await sql.close();
    }
  },
});
