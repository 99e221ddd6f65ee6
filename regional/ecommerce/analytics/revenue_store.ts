/**
 * @module
 * The revenue projection over the SQL port: applying one event to `revenue_order_state` and
 * `revenue_minute` (in the caller's transaction, next to its `processed_events` marker), and reading the
 * windows back.
 */
import type { SqlExecutor } from "../../../shared/ports/sql.ts";
import { decimalText, decimalTextOfUnits } from "./_decimal.ts";
import { applyRevenueEvent, type OrderRevenueState, type RevenueEvent } from "./revenue_rules.ts";
import { parseMoney } from "../../../shared/contracts/money.ts";

/** One (minute, currency) window as the API and the replay show it. */
export interface RevenueWindow {
  /** ISO 8601, UTC, on a minute boundary. */
  readonly windowStart: string;
  readonly currency: string;
  /** Net revenue, decimal text ("129.50"). */
  readonly revenue: string;
  /** Net paid orders (a cancel after payment subtracts one). */
  readonly orders: number;
}

interface StateRow extends Record<string, unknown> {
  amount: string | null;
  currency: string | null;
  paid_at: Date | null;
  canceled_at: Date | null;
}

interface WindowRow extends Record<string, unknown> {
  window_start: Date;
  currency: string;
  revenue: string;
  orders: number;
}

/** Applies `event` to the projection tables inside `tx`; resolves with whether anything changed. */
export async function applyToRevenueTables(tx: SqlExecutor, event: RevenueEvent, now: Date): Promise<boolean> {
  // Inserted first so the row can be locked: consumers of other partitions never touch this order, but a
  // member that lost its partition in a rebalance may still be finishing the same record.
  await tx.query`insert into revenue_order_state (order_id) values (${event.orderId}) on conflict do nothing`;
  const rows = await tx.query<StateRow>`
    select amount::text as amount, currency, paid_at, canceled_at
    from revenue_order_state where order_id = ${event.orderId} for update`;
  const outcome = applyRevenueEvent(stateOf(rows[0]), event);
  if (!outcome.changed) return false;
  const { paid, canceledAt } = outcome.state;
  await tx.query`
    update revenue_order_state
    set amount = ${paid ? decimalTextOfUnits(paid.amountUnits) : null}::numeric,
        currency = ${paid?.currency ?? null}, paid_at = ${paid?.at ?? null}, canceled_at = ${canceledAt ?? null}
    where order_id = ${event.orderId}`;
  for (const delta of outcome.deltas) {
    await tx.query`
      insert into revenue_minute (window_start, currency, revenue, orders, updated_at)
      values (${delta.windowStart}, ${delta.currency}, ${decimalTextOfUnits(delta.revenueUnits)}::numeric,
              ${delta.orders}, ${now})
      on conflict (window_start, currency) do update
      set revenue = revenue_minute.revenue + excluded.revenue, orders = revenue_minute.orders + excluded.orders,
          updated_at = excluded.updated_at`;
  }
  return true;
}

function stateOf(row: StateRow | undefined): OrderRevenueState {
  if (!row) return {};
  const paid = row.paid_at && row.amount !== null && row.currency !== null
    ? { amountUnits: parseMoney(row.amount), currency: row.currency, at: row.paid_at }
    : undefined;
  return { ...(paid ? { paid } : {}), ...(row.canceled_at ? { canceledAt: row.canceled_at } : {}) };
}

/** The windows starting in [from, to), oldest first, at most `limit` rows; one currency when given. */
export async function readRevenueWindows(
  sql: SqlExecutor,
  range: { readonly from: Date; readonly to: Date; readonly currency?: string; readonly limit: number },
): Promise<RevenueWindow[]> {
  const rows = range.currency === undefined
    ? await sql.query<WindowRow>`
        select window_start, currency, revenue::text as revenue, orders from revenue_minute
        where window_start >= ${range.from} and window_start < ${range.to}
        order by window_start, currency limit ${range.limit}`
    : await sql.query<WindowRow>`
        select window_start, currency, revenue::text as revenue, orders from revenue_minute
        where window_start >= ${range.from} and window_start < ${range.to} and currency = ${range.currency}
        order by window_start limit ${range.limit}`;
  return rows.map(windowOf);
}

/** Every window, oldest first, at most `limit` rows (the replay compares the whole projection). */
export async function readAllRevenueWindows(sql: SqlExecutor, limit: number): Promise<RevenueWindow[]> {
  const rows = await sql.query<WindowRow>`
    select window_start, currency, revenue::text as revenue, orders from revenue_minute
    order by window_start, currency limit ${limit}`;
  return rows.map(windowOf);
}

function windowOf(row: WindowRow): RevenueWindow {
  return {
    windowStart: row.window_start.toISOString(),
    currency: row.currency,
    revenue: decimalText(row.revenue),
    orders: row.orders,
  };
}
