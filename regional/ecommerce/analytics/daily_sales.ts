/**
 * @module
 * The daily sales batch (seed 003 "batch sales summary"): recomputes one UTC day of `daily_sales` from the
 * orders tables — never from the streaming projection, so the two paths check each other. It follows the
 * projection's rules, with the order's status history as the clock: an order counts (+total, +1) on the
 * day it became PAID and is taken back (−total, −1) on the day it went from PAID to CANCELED; an order
 * canceled before payment never counts. Re-running a day replaces that day (delete + insert in one
 * transaction), so the job is idempotent and safe to retry.
 *
 * A day is summarised only once it is settled ({@linkcode DAY_SETTLE_MS} after its end): a history row's
 * `at` is the app clock read inside the pay/cancel transaction, before its statements run, and the row is
 * visible only once that transaction commits — a run at 00:00:05 would miss a payment stamped 23:59:59.9
 * that commits at 00:00:06, and nothing would ever add it back.
 */
import type { Sql } from "../../../shared/ports/mod.ts";
import { decimalText } from "./_decimal.ts";

/** One row of `daily_sales`. */
export interface DailySalesRow {
  /** YYYY-MM-DD (UTC). */
  readonly date: string;
  readonly currency: string;
  /** Net revenue, decimal text. */
  readonly revenue: string;
  /** Net paid orders. */
  readonly orders: number;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DAY_MS = 24 * 60 * 60_000;

/**
 * How long after a day ends a transaction may still commit a row stamped on it. On PostgreSQL the adapter
 * bounds each statement by `statement_timeout` (30 s) and each pause between statements by
 * `idle_in_transaction_session_timeout` (60 s) (`shared/adapters/postgres/sql.ts`); after reading the clock
 * a pay or cancel runs three statements (the guarded update with its history row, the outbox insert, COMMIT),
 * so it commits within 3 × 30 s + 3 × 60 s = 4.5 min. PGlite runs one transaction at a time in process, far
 * faster. Not covered: clocks of different hosts that disagree by more than the half minute left.
 */
export const DAY_SETTLE_MS = 5 * 60_000;

/** Thrown when a day is summarised before it is settled (its end plus {@linkcode DAY_SETTLE_MS}). */
export class DayNotSettledError extends Error {
  override readonly name = "DayNotSettledError";
  constructor(readonly date: string, readonly settlesAt: Date, settleMs: number) {
    super(
      `Day "${date}" cannot be summarised before ${settlesAt.toISOString()} (its end plus ` +
        `${settleMs / 60_000} min): payments and cancels stamped on it may still be committing until then; ` +
        "run it after that",
    );
  }
}

/** The UTC day `date` names; throws a RangeError for anything but a real YYYY-MM-DD date. */
export function utcDayOf(date: string): { start: Date; end: Date } {
  const match = DATE.exec(date);
  const start = match ? new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))) : undefined;
  if (!start || start.toISOString().slice(0, 10) !== date) {
    throw new RangeError(`Date "${date}" is not a calendar date; use YYYY-MM-DD, for example "2025-01-31"`);
  }
  return { start, end: new Date(start.getTime() + DAY_MS) };
}

/** Yesterday's UTC date as YYYY-MM-DD: the day a nightly run summarises. */
export function yesterdayUtc(now: Date): string {
  return new Date(now.getTime() - DAY_MS).toISOString().slice(0, 10);
}

/** Throws {@linkcode DayNotSettledError} when, at `now`, rows stamped on `date` may still be committing. */
export function assertDaySettled(date: string, now: Date, settleMs: number = DAY_SETTLE_MS): void {
  const settlesAt = new Date(utcDayOf(date).end.getTime() + settleMs);
  if (now.getTime() < settlesAt.getTime()) throw new DayNotSettledError(date, settlesAt, settleMs);
}

/** Options of {@linkcode runDailySales}. */
export interface DailySalesOptions {
  /** The UTC day, YYYY-MM-DD. */
  readonly date: string;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** How long after its end a day is settled. @default {@linkcode DAY_SETTLE_MS} */
  readonly settleMs?: number;
  /**
   * Summarise a day that is not settled yet (today, a provisional figure): rows still committing are missed
   * until the day is run again. @default false
   */
  readonly allowUnsettled?: boolean;
}

/**
 * Recomputes `daily_sales` for `date` (UTC) from the orders tables; resolves with the rows written. Rejects
 * with {@linkcode DayNotSettledError} for a day not settled yet, unless `allowUnsettled`.
 */
export async function runDailySales(sql: Sql, options: DailySalesOptions): Promise<DailySalesRow[]> {
  const { start, end } = utcDayOf(options.date);
  const computedAt = (options.now ?? (() => new Date()))();
  if (!options.allowUnsettled) assertDaySettled(options.date, computedAt, options.settleMs);
  return await sql.transaction(async (tx) => {
    await tx.query`delete from daily_sales where date = ${options.date}::date`;
    const rows = await tx.query<{ currency: string; revenue: string; orders: number }>`
      with moves as (
        select o.currency, o.total_amount as amount, 1 as n
        from order_status_history h join orders o on o.id = h.order_id
        where h.to_status = 'PAID' and h.at >= ${start} and h.at < ${end}
        union all
        select o.currency, -o.total_amount, -1
        from order_status_history h join orders o on o.id = h.order_id
        where h.to_status = 'CANCELED' and h.from_status = 'PAID' and h.at >= ${start} and h.at < ${end}
      )
      insert into daily_sales (date, currency, revenue, orders, computed_at)
      select ${options.date}::date, currency, sum(amount), sum(n)::int, ${computedAt} from moves group by currency
      returning currency, revenue::text as revenue, orders`;
    return rows
      .map((row) => ({
        date: options.date,
        currency: row.currency,
        revenue: decimalText(row.revenue),
        orders: row.orders,
      }))
      .sort((a, b) => a.currency.localeCompare(b.currency));
  });
}

/** The stored rows of `date`, by currency. */
export async function readDailySales(sql: Sql, date: string): Promise<DailySalesRow[]> {
  utcDayOf(date);
  const rows = await sql.query<{ currency: string; revenue: string; orders: number }>`
    select currency, revenue::text as revenue, orders from daily_sales where date = ${date}::date order by currency`;
  return rows.map((row) => ({ date, currency: row.currency, revenue: decimalText(row.revenue), orders: row.orders }));
}
