/**
 * @module
 * The order lifecycle after placement — cancel and fulfil (paying is in pay_order.ts) — and the reads.
 * Every transition writes the order, its history row and its event in one transaction; calls to inventory
 * happen outside transactions, bounded by a timeout, and are idempotent by order id, so a retried request
 * repeats them safely.
 */
import type { Principal } from "../../../shared/auth/mod.ts";
import { orderCanceled, orderFulfilled } from "../../../shared/contracts/events/ecommerce.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { SqlExecutor } from "../../../shared/ports/sql.ts";
import { appendToOutbox, envelopeFor } from "../outbox/mod.ts";
import { authorizeOrder, orderNotFound } from "./authorize.ts";
import { ORDER_PRODUCER, type OrderContext } from "./order_deps.ts";
import {
  findOrderHead,
  listOrderHeads,
  type OrderHead,
  type OrderView,
  transitionOrder,
  viewsOf,
} from "./order_store.ts";
import { releaseQuietly, withTimeout } from "./bounded_calls.ts";

/** The order, or the 404 every caller gets for a missing one. */
export async function loadOrder(ctx: OrderContext, id: string): Promise<OrderHead> {
  const order = await findOrderHead(ctx.sql, id);
  if (!order) throw orderNotFound(id);
  return order;
}

/** The full view (items included) of one order. */
export async function viewOf(ctx: OrderContext, order: OrderHead): Promise<OrderView> {
  return (await viewsOf(ctx.sql, [order]))[0];
}

/** The order, if `principal` may see it (owner or ADMIN); anyone else gets the same 404 as a missing order. */
export async function getOrder(ctx: OrderContext, principal: Principal, id: string): Promise<OrderView> {
  const order = await loadOrder(ctx, id);
  authorizeOrder("order.read", principal, order);
  return await viewOf(ctx, order);
}

/** A page of the caller's orders, newest first, with an opaque cursor to the next page. */
export async function listMyOrders(
  ctx: OrderContext,
  principal: Principal,
  page: { readonly limit: number; readonly cursor?: string },
): Promise<{ items: OrderView[]; nextCursor: string | null }> {
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
  const heads = await listOrderHeads(ctx.sql, principal.userId, { limit: page.limit + 1, after });
  const more = heads.length > page.limit;
  const shown = heads.slice(0, page.limit);
  const last = shown.at(-1);
  return {
    items: await viewsOf(ctx.sql, shown),
    nextCursor: more && last ? encodeCursor(last) : null,
  };
}

/**
 * Writes a cancel in `tx`: the CANCELED transition (with its history row) and the canceled event. The one
 * place every cancel — the customer's, an admin's, the system's — goes through.
 */
export async function writeCancel(
  tx: SqlExecutor,
  order: OrderHead,
  change: { readonly reason: string; readonly actor: string; readonly at: Date },
): Promise<OrderHead> {
  const next = await transitionOrder(tx, order, { to: "CANCELED", ...change });
  const payload = { orderId: order.id, userId: order.userId, reason: change.reason };
  await appendToOutbox(tx, envelopeFor(orderCanceled, payload, ORDER_PRODUCER));
  return next;
}

/** Cancels an order the policy lets the caller cancel, releases its stock and announces it. */
export async function cancelOrder(
  ctx: OrderContext,
  principal: Principal,
  id: string,
  reason: string | undefined,
): Promise<OrderView> {
  const order = await loadOrder(ctx, id);
  authorizeOrder("order.cancel", principal, order);
  const why = reason ?? (principal.userId === order.userId ? "canceled by customer" : "canceled by admin");
  const canceled = await ctx.sql.transaction((tx) =>
    writeCancel(tx, order, { reason: why, actor: principal.userId, at: ctx.now() })
  );
  ctx.nudgeOutbox();
  await releaseQuietly(ctx, order.id);
  return await viewOf(ctx, canceled);
}

/** Fulfils a PAID order (ADMIN): the reserved units leave the warehouse, then FULFILLED is announced. */
export async function fulfilOrder(ctx: OrderContext, principal: Principal, id: string): Promise<OrderView> {
  const order = await loadOrder(ctx, id);
  authorizeOrder("order.fulfil", principal, order);
  // Committed first for the same reason as confirm on pay: the call is idempotent, the transition is not.
  try {
    await withTimeout(ctx.stock.commit(order.id), ctx.stockTimeoutMs, "Inventory");
  } catch (error) {
    throw new ProblemError(
      "COMMON.UPSTREAM_UNAVAILABLE",
      `Inventory could not commit the stock of order "${order.id}"; it stays PAID — retry the fulfilment`,
      { cause: error, headers: { "retry-after": "2" } },
    );
  }
  const fulfilled = await ctx.sql.transaction(async (tx) => {
    const next = await transitionOrder(tx, order, {
      to: "FULFILLED",
      reason: "fulfilled",
      actor: principal.userId,
      at: ctx.now(),
    });
    await appendToOutbox(tx, envelopeFor(orderFulfilled, { orderId: order.id, userId: order.userId }, ORDER_PRODUCER));
    return next;
  });
  ctx.nudgeOutbox();
  return await viewOf(ctx, fulfilled);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * The times a cursor may name (years 1970 to 9999): every order was placed in them, and PostgreSQL refuses
 * some of what `new Date` parses (year 0000 and earlier: SQLSTATE 22008, a 500), so a forged cursor outside
 * them is a 400 before SQL sees it.
 */
const CURSOR_TIME_MS_MIN = Date.UTC(1970, 0, 1);
const CURSOR_TIME_MS_MAX = Date.UTC(10_000, 0, 1) - 1;

/** The keyset position (created_at, id) of the last order shown, as base64url JSON. */
function encodeCursor(order: OrderHead): string {
  const json = JSON.stringify([order.createdAt.toISOString(), order.id]);
  return btoa(json).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const json = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const [iso, id] = JSON.parse(json) as [unknown, unknown];
    const createdAt = new Date(String(iso));
    const ms = createdAt.getTime();
    if (
      typeof iso === "string" && typeof id === "string" && UUID.test(id) && ms >= CURSOR_TIME_MS_MIN &&
      ms <= CURSOR_TIME_MS_MAX
    ) {
      return { createdAt, id };
    }
  } catch {
    // Falls through to the problem below.
  }
  throw new ProblemError(
    "COMMON.VALIDATION_FAILED",
    `Cursor "${cursor.slice(0, 40)}" is not valid; pass the nextCursor of the previous page unchanged`,
  );
}
