/**
 * @module
 * Orders over the SQL port: reading them, inserting a new one, moving one along its lifecycle (the order
 * row, its status-history row and — written by the caller — its outbox row share one transaction), and
 * recording payment attempts. Transitions use an optimistic `version` check, so two concurrent transitions
 * of one order cannot both win.
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { OrderStatus } from "../../../shared/policies/mod.ts";
import type { SqlExecutor } from "../../../shared/ports/sql.ts";
import type { OutboxRowValues } from "../outbox/mod.ts";

/** The lifecycle: which states each state may move to. */
export const ORDER_TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = Object.freeze({
  PENDING: ["RESERVED", "CANCELED"],
  RESERVED: ["PAID", "CANCELED"],
  PAID: ["FULFILLED", "CANCELED"],
  FULFILLED: [],
  CANCELED: [],
});

export interface OrderItemView {
  readonly productId: string;
  readonly qty: number;
  /** Unit price at the time of the order (decimal string). */
  readonly price: string;
}

/** The public shape of an order. Money is a decimal string; times are ISO 8601. */
export interface OrderView {
  readonly id: string;
  readonly userId: string;
  readonly status: OrderStatus;
  readonly items: readonly OrderItemView[];
  readonly totalAmount: string;
  readonly currency: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly version: number;
}

/** An order row without its items: enough to authorize and transition. */
export interface OrderHead {
  readonly id: string;
  readonly userId: string;
  readonly status: OrderStatus;
  readonly totalAmount: string;
  readonly currency: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly version: number;
}

interface OrderRow extends Record<string, unknown> {
  id: string;
  user_id: string;
  status: OrderStatus;
  total_amount: string;
  currency: string;
  created_at: Date;
  updated_at: Date;
  version: number;
}

interface ItemRow extends Record<string, unknown> {
  order_id: string;
  product_id: string;
  qty: number;
  price: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function headOf(row: OrderRow): OrderHead {
  return {
    id: row.id,
    userId: row.user_id,
    status: row.status,
    totalAmount: row.total_amount,
    currency: row.currency,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    version: row.version,
  };
}

/** The public view of `head` with `items` (already known to the caller, so not read again). */
export function viewOf(head: OrderHead, items: readonly OrderItemView[]): OrderView {
  return {
    id: head.id,
    userId: head.userId,
    status: head.status,
    items,
    totalAmount: head.totalAmount,
    currency: head.currency,
    createdAt: head.createdAt.toISOString(),
    updatedAt: head.updatedAt.toISOString(),
    version: head.version,
  };
}

/** The order's head, or undefined (a malformed id can never name an order, so it is not queried). */
export async function findOrderHead(sql: SqlExecutor, id: string): Promise<OrderHead | undefined> {
  if (!UUID.test(id)) return undefined;
  const rows = await sql.query<OrderRow>`
    select id::text as id, user_id, status, total_amount::text as total_amount, currency, created_at, updated_at,
           version
    from orders where id = ${id}::uuid`;
  return rows[0] ? headOf(rows[0]) : undefined;
}

/**
 * Up to `limit` orders still PENDING or RESERVED that were created before `createdBefore`, oldest first
 * (the partial index `orders_open_by_created` keeps this a short scan whatever the history holds).
 */
export async function listOpenOrderHeadsCreatedBefore(
  sql: SqlExecutor,
  createdBefore: Date,
  limit: number,
): Promise<OrderHead[]> {
  const rows = await sql.query<OrderRow>`
    select id::text as id, user_id, status, total_amount::text as total_amount, currency, created_at, updated_at,
           version
    from orders where status in ('PENDING', 'RESERVED') and created_at < ${createdBefore}
    order by created_at limit ${limit}`;
  return rows.map(headOf);
}

/** The full views of `heads`, items included, in the order given (one query for all items). */
export async function viewsOf(sql: SqlExecutor, heads: readonly OrderHead[]): Promise<OrderView[]> {
  if (heads.length === 0) return [];
  const ids = heads.map((h) => h.id);
  const rows = await sql.query<ItemRow>`
    select order_id::text as order_id, product_id::text as product_id, qty, price::text as price
    from order_items where order_id = any(${ids}::uuid[]) order by order_id, line_no`;
  const byOrder = new Map<string, OrderItemView[]>();
  for (const row of rows) {
    const items = byOrder.get(row.order_id) ?? [];
    items.push({ productId: row.product_id, qty: row.qty, price: row.price });
    byOrder.set(row.order_id, items);
  }
  return heads.map((head) => viewOf(head, byOrder.get(head.id) ?? []));
}

/** A page of `userId`'s orders, newest first, strictly after the keyset position `after`. */
export async function listOrderHeads(
  sql: SqlExecutor,
  userId: string,
  page: { readonly limit: number; readonly after?: { readonly createdAt: Date; readonly id: string } },
): Promise<OrderHead[]> {
  const rows = page.after
    ? await sql.query<OrderRow>`
        select id::text as id, user_id, status, total_amount::text as total_amount, currency, created_at,
               updated_at, version
        from orders
        where user_id = ${userId} and (created_at, id) < (${page.after.createdAt}, ${page.after.id}::uuid)
        order by created_at desc, id desc limit ${page.limit}`
    : await sql.query<OrderRow>`
        select id::text as id, user_id, status, total_amount::text as total_amount, currency, created_at,
               updated_at, version
        from orders where user_id = ${userId}
        order by created_at desc, id desc limit ${page.limit}`;
  return rows.map(headOf);
}

/** A new order as inserted (status PENDING). */
export interface NewOrder {
  readonly id: string;
  readonly userId: string;
  readonly items: readonly OrderItemView[];
  readonly totalAmount: string;
  readonly currency: string;
  /** Millisecond precision (a JS Date), so keyset cursors round-trip exactly. */
  readonly at: Date;
}

/**
 * Inserts the order PENDING with its items, its first history row and `event` (its outbox row) in ONE
 * statement: a single statement is atomic without begin/commit, and each round trip to Postgres costs far
 * more CPU on this platform than the SQL itself (see docs/ARCHITECTURE.md, "Orders in few round trips").
 * Foreign keys between the rows are checked at the end of the statement, so the order of the CTEs is free.
 */
export async function insertOrder(
  sql: SqlExecutor,
  order: NewOrder,
  actor: string,
  event: OutboxRowValues,
  claim?: { readonly scope: string; readonly key: string; readonly started: Date },
): Promise<OrderHead> {
  const lineNos = order.items.map((_, i) => i + 1);
  const productIds = order.items.map((i) => i.productId);
  const qtys = order.items.map((i) => i.qty);
  const prices = order.items.map((i) => i.price);
  await sql.query`
    with placed as (
      insert into orders (id, user_id, status, total_amount, currency, created_at, updated_at, version)
      values (${order.id}::uuid, ${order.userId}, 'PENDING', ${order.totalAmount}::numeric, ${order.currency},
              ${order.at}, ${order.at}, 1)
    ), lines as (
      insert into order_items (order_id, line_no, product_id, qty, price)
      select ${order.id}::uuid, line_no, product_id, qty, price
      from unnest(${lineNos}::int[], ${productIds}::uuid[], ${qtys}::int[], ${prices}::numeric[])
        as t(line_no, product_id, qty, price)
    ), history as (
      insert into order_status_history (order_id, from_status, to_status, reason, actor, at)
      values (${order.id}::uuid, null, 'PENDING', 'order placed', ${actor}, ${order.at})
    ), bound as (
      -- The order is this request's effect: recorded on its Idempotency-Key claim in the same statement, so a
      -- retry after a crash finds it (matches nothing without a claim).
      update idempotency_keys set effect_ref = ${order.id}
      where user_id = ${claim?.scope ?? null} and key = ${claim?.key ?? null} and created_at = ${claim?.started ?? null}
        and status = 'in_flight'
    )
    insert into outbox (event_id, topic, partition_key, envelope, headers)
    values (${event.eventId}, ${event.topic}, ${event.partitionKey}, ${event.envelope}, ${event.headers})`;
  return {
    id: order.id,
    userId: order.userId,
    status: "PENDING",
    totalAmount: order.totalAmount,
    currency: order.currency,
    createdAt: order.at,
    updatedAt: order.at,
    version: 1,
  };
}

/**
 * Moves `order` to `to` if it is still at the version read; otherwise (or if the lifecycle forbids the
 * move) throws 409 `ECOMMERCE.ORDER_INVALID_TRANSITION`. Writes the status-history row in `tx`.
 */
export async function transitionOrder(
  tx: SqlExecutor,
  order: OrderHead,
  change: { readonly to: OrderStatus; readonly reason: string; readonly actor: string; readonly at: Date },
): Promise<OrderHead> {
  if (!ORDER_TRANSITIONS[order.status].includes(change.to)) {
    throw new ProblemError(
      "ECOMMERCE.ORDER_INVALID_TRANSITION",
      `Order "${order.id}" is ${order.status} and cannot become ${change.to}; reload it to see its current status`,
    );
  }
  // One statement: the history row is written only when the guarded update matched (one round trip, atomic
  // on its own, so a caller with nothing else to write needs no transaction).
  const rows = await tx.query<OrderRow>`
    with moved as (
      update orders set status = ${change.to}, version = version + 1, updated_at = ${change.at}
      where id = ${order.id}::uuid and version = ${order.version} and status = ${order.status}
      returning id, user_id, status, total_amount, currency, created_at, updated_at, version
    ), history as (
      insert into order_status_history (order_id, from_status, to_status, reason, actor, at)
      select id, ${order.status}::text, ${change.to}::text, ${change.reason}::text, ${change.actor}::text,
             ${change.at}::timestamptz
      from moved
    )
    select id::text as id, user_id, status, total_amount::text as total_amount, currency, created_at, updated_at,
           version
    from moved`;
  if (rows.length === 0) {
    throw new ProblemError(
      "ECOMMERCE.ORDER_INVALID_TRANSITION",
      `Order "${order.id}" changed while this request ran (it was ${order.status}); reload it and retry`,
    );
  }
  return headOf(rows[0]);
}

/** One attempt to charge an order, as recorded in `payments`. */
export interface PaymentAttempt {
  readonly orderId: string;
  readonly status: "APPROVED" | "DECLINED" | "UNAVAILABLE";
  readonly authCode?: string;
  readonly reason?: string;
  readonly via?: string;
  readonly amount: string;
  readonly currency: string;
  readonly at: Date;
}

export async function recordPayment(sql: SqlExecutor, attempt: PaymentAttempt): Promise<void> {
  await sql.query`
    insert into payments (order_id, status, auth_code, reason, via, amount, currency, created_at)
    values (${attempt.orderId}::uuid, ${attempt.status}, ${attempt.authCode ?? null}, ${attempt.reason ?? null},
            ${attempt.via ?? null}, ${attempt.amount}::numeric, ${attempt.currency}, ${attempt.at})`;
}
