/**
 * @module
 * Placing an order: price the items from the catalog (a product in a running flash sale at its sale price),
 * insert the order PENDING with its items and the `order.created` event (one statement), reserve stock over the
 * inventory port, then RESERVED (one statement, or a transaction that also empties the cart) — or CANCELED with
 * the `order.canceled` event when stock is short. Round trips are counted here on purpose: on this platform each costs more CPU than its SQL.
 */
import type { Principal } from "../../../shared/auth/mod.ts";
import { orderCreated } from "../../../shared/contracts/events/ecommerce.ts";
import { AMOUNT_MAX_UNITS, formatMoney, multiplyMoneyUnits, parseMoney } from "../../../shared/contracts/money.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import { clearCart, getCartItemsForCheckout } from "../cart/mod.ts";
import { getPricesByIds } from "../catalog/mod.ts";
import type { ReserveOutcome, SalePrice } from "../contracts.ts";
import { envelopeFor, outboxRowOf } from "../outbox/mod.ts";
import { ORDER_PRODUCER, type OrderContext } from "./order_deps.ts";
import { writeCancel } from "./order_actions.ts";
import { orderCreationLatency, ordersCreated } from "./order_metrics.ts";
import type { IdempotencyClaim } from "./idempotency.ts";
import {
  findOrderHead,
  insertOrder,
  type OrderHead,
  type OrderItemView,
  type OrderView,
  transitionOrder,
  viewOf,
  viewsOf,
} from "./order_store.ts";
import { ORDER_LIMITS, type PlaceOrderBody } from "./schemas.ts";
import { releaseQuietly, withTimeout } from "./bounded_calls.ts";

/** numeric(12, 2) holds at most this; a larger total is refused before it reaches the database. */
const TOTAL_MAX = AMOUNT_MAX_UNITS;

interface RequestedLine {
  readonly productId: string;
  readonly qty: number;
}

/**
 * Places an order for `principal`; resolves with the RESERVED order or throws a problem. With the request's
 * Idempotency-Key `claim`, the order is recorded on it; when the claim carries an order placed by an earlier
 * attempt of the same request that died midway, that order is answered (and a PENDING one taken on to
 * RESERVED or CANCELED) instead of placing a second one.
 */
export async function placeOrder(
  ctx: OrderContext,
  principal: Principal,
  body: PlaceOrderBody,
  claim?: IdempotencyClaim,
): Promise<OrderView> {
  const started = performance.now();
  // "rejected": refused before an order existed (validation, unknown product, currency mismatch).
  let outcome = "rejected";
  try {
    const prior = claim?.priorEffect ? await resumablePrior(ctx, principal, claim.priorEffect) : undefined;
    // A canceled prior order was the earlier attempt's failure (its answer was a 5xx, so the key was kept
    // for this retry, with no charge and no stock held): the retry places the order anew.
    if (prior && prior.status !== "CANCELED") return await resume(ctx, principal, prior, body, (o) => outcome = o);
    return await place(ctx, principal, body, (o) => outcome = o, claim);
  } finally {
    if (outcome !== "rejected") ordersCreated.inc({ outcome });
    orderCreationLatency.observe({ outcome }, (performance.now() - started) / 1000);
  }
}

/** The order an earlier attempt of this request placed, if it is `principal`'s and still there. */
async function resumablePrior(
  ctx: OrderContext,
  principal: Principal,
  orderId: string,
): Promise<OrderView | undefined> {
  const head = await findOrderHead(ctx.sql, orderId);
  if (!head || head.userId !== principal.userId) return undefined;
  return (await viewsOf(ctx.sql, [head]))[0];
}

/** Answers the order of a dead earlier attempt: as it is, or (still PENDING) reserved or canceled now. */
async function resume(
  ctx: OrderContext,
  principal: Principal,
  prior: OrderView,
  body: PlaceOrderBody,
  setOutcome: (outcome: "reserved" | "canceled") => void,
): Promise<OrderView> {
  log.info("idempotent retry answered with the order of an earlier attempt", {
    orderId: prior.id,
    status: prior.status,
  });
  if (prior.status !== "PENDING") return prior;
  const head = await findOrderHead(ctx.sql, prior.id);
  if (!head) return prior;
  const cartId = "cartId" in body ? body.cartId : undefined;
  return await reserveAndConfirm(ctx, principal, head, prior.items, cartId, setOutcome);
}

async function place(
  ctx: OrderContext,
  principal: Principal,
  body: PlaceOrderBody,
  setOutcome: (outcome: "reserved" | "canceled") => void,
  claim?: IdempotencyClaim,
): Promise<OrderView> {
  const cartId = "cartId" in body ? body.cartId : undefined;
  const requested = "cartId" in body ? await cartLines(ctx, principal, body.cartId) : body.items;
  const priced = await priceLines(ctx, requested);
  const pending = await insertPending(ctx, principal, priced, claim);
  return await reserveAndConfirm(ctx, principal, pending, priced.items, cartId, setOutcome);
}

/** Reserves the stock of the PENDING `pending`, then RESERVED (emptying the cart) — or CANCELED and a problem. */
async function reserveAndConfirm(
  ctx: OrderContext,
  principal: Principal,
  pending: OrderHead,
  items: readonly OrderItemView[],
  cartId: string | undefined,
  setOutcome: (outcome: "reserved" | "canceled") => void,
): Promise<OrderView> {
  const requested = items.map((i) => ({ productId: i.productId, qty: i.qty }));
  try {
    await reserveOrCancel(ctx, pending, requested);
  } catch (error) {
    setOutcome("canceled");
    throw error;
  }
  try {
    const change = { to: "RESERVED", reason: "stock reserved", actor: principal.userId, at: ctx.now() } as const;
    // Without a cart to empty the transition is one statement: no transaction (two round trips fewer).
    const reserved = cartId === undefined
      ? await transitionOrder(ctx.sql, pending, change)
      : await ctx.sql.transaction(async (tx) => {
        const next = await transitionOrder(tx, pending, change);
        await clearCart(tx, cartId, requested);
        return next;
      });
    setOutcome("reserved");
    // The items were written by this request: answer them instead of reading them back.
    return viewOf(reserved, items);
  } catch (error) {
    await undoReservation(ctx, pending, error);
    throw error;
  }
}

/**
 * The RESERVED transition failed: the customer canceled the PENDING order meanwhile (409), or the database
 * failed (a 5xx, after which the client retries with the same key). The order must not stay PENDING with
 * nothing ahead of it, and its stock is given back only once the order is certainly CANCELED: a transition
 * that committed although its answer was lost leaves a RESERVED order, whose hold must stay. If the cancel
 * itself fails the hold stays too: a retry with the same key resumes the order, or the lapse sweeper
 * cancels it and releases the stock.
 */
async function undoReservation(ctx: OrderContext, pending: OrderHead, cause: unknown): Promise<void> {
  try {
    await cancelBySystem(ctx, pending, "order could not be confirmed");
    const now = await findOrderHead(ctx.sql, pending.id);
    if (now?.status !== "CANCELED") {
      log.warn("the RESERVED transition failed but the order is not canceled; its stock stays held", {
        orderId: pending.id,
        status: now?.status,
        error: String(cause),
      });
      return;
    }
  } catch (error) {
    log.warn("an order whose RESERVED transition failed could not be canceled; its stock stays held", {
      orderId: pending.id,
      error: String(error),
      cause: String(cause),
    });
    return;
  }
  await releaseQuietly(ctx, pending.id);
}

/** Statement 1 (atomic on its own): the order PENDING, its items, its first history row and the created event. */
async function insertPending(
  ctx: OrderContext,
  principal: Principal,
  priced: { items: OrderItemView[]; totalAmount: string; currency: string },
  claim?: IdempotencyClaim,
): Promise<OrderHead> {
  const orderId = crypto.randomUUID();
  const order = { id: orderId, userId: principal.userId, at: ctx.now(), ...priced };
  const payload = {
    orderId,
    userId: principal.userId,
    totalAmount: priced.totalAmount,
    currency: priced.currency,
    items: priced.items.map((i) => ({ productId: i.productId, qty: i.qty, price: i.price })),
  };
  const event = outboxRowOf(envelopeFor(orderCreated, payload, ORDER_PRODUCER));
  const head = await insertOrder(ctx.sql, order, principal.userId, event, claim);
  ctx.nudgeOutbox();
  return head;
}

/** Reserves the stock of `order`, or cancels the order (with its event) and throws the matching problem. */
async function reserveOrCancel(ctx: OrderContext, order: OrderHead, items: readonly RequestedLine[]): Promise<void> {
  let reserved: ReserveOutcome;
  try {
    reserved = await withTimeout(
      ctx.stock.reserve({ reservationId: order.id, items, ttlSec: ctx.reservationTtlSec }),
      ctx.stockTimeoutMs,
      "Inventory",
    );
  } catch (error) {
    // Unknown outcome: cancel and release (both idempotent) so no stock stays held for an order nobody sees.
    await cancelBySystem(ctx, order, "stock reservation unavailable");
    await releaseQuietly(ctx, order.id);
    throw new ProblemError(
      "COMMON.UPSTREAM_UNAVAILABLE",
      "Stock could not be reserved right now; retry the request (the same Idempotency-Key is fine)",
      { cause: error, headers: { "retry-after": "2" } },
    );
  }
  if (reserved.ok) return;
  const shortage = `Cannot reserve ${reserved.requested} of product "${reserved.productId}": only ` +
    `${reserved.available} available`;
  await cancelBySystem(ctx, order, shortage);
  throw new ProblemError(
    "ECOMMERCE.INSUFFICIENT_STOCK",
    `${shortage}; order "${order.id}" is canceled — lower the quantity and place a new order`,
  );
}

async function cartLines(ctx: OrderContext, principal: Principal, cartId: string): Promise<RequestedLine[]> {
  const lines = await getCartItemsForCheckout(ctx.sql, principal.userId, cartId);
  if (lines === null) {
    throw new ProblemError(
      "ECOMMERCE.CART_NOT_FOUND",
      `Cart "${cartId}" does not exist; check the id or create a cart with POST /api/v1/carts`,
    );
  }
  if (lines.length === 0) {
    throw new ProblemError("COMMON.VALIDATION_FAILED", `Cart "${cartId}" is empty; add items before placing an order`);
  }
  if (lines.length > ORDER_LIMITS.itemsMax) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `Cart "${cartId}" has ${lines.length} products; an order holds at most ${ORDER_LIMITS.itemsMax} — split it`,
    );
  }
  return lines.map((l) => ({ productId: l.productId.toLowerCase(), qty: l.qty }));
}

/**
 * Prices every line: a product in a running flash sale at its sale price, any other at its catalog price. One
 * currency per order, every product known, total within bounds. The catalog and the sales are read together.
 */
async function priceLines(
  ctx: OrderContext,
  lines: readonly RequestedLine[],
): Promise<{ items: OrderItemView[]; totalAmount: string; currency: string }> {
  const ids = lines.map((l) => l.productId);
  const [products, sales] = await Promise.all([getPricesByIds(ctx.sql, ids), salePricesOf(ctx, ids)]);
  const items: OrderItemView[] = [];
  for (const line of lines) {
    const product = products.get(line.productId);
    if (!product) {
      throw new ProblemError(
        "ECOMMERCE.PRODUCT_NOT_FOUND",
        `Product "${line.productId}" does not exist; remove it from the order or check the id`,
      );
    }
    // A sale is priced in its product's currency when it starts; a product re-priced in another currency
    // since then is sold at its list price. A sale is a discount: a list price lowered below it meanwhile wins.
    const sale = sales.get(line.productId);
    const onSale = sale && sale.currency === product.currency &&
      parseMoney(sale.price) < parseMoney(product.price);
    const price = onSale ? sale.price : product.price;
    items.push({ productId: line.productId, qty: line.qty, price });
  }
  const currencies = [...new Set(lines.map((l) => products.get(l.productId)!.currency))];
  if (currencies.length > 1) {
    throw new ProblemError(
      "ECOMMERCE.CURRENCY_MISMATCH",
      `The products are priced in ${currencies.map((c) => `"${c}"`).join(", ")}; an order has one currency — ` +
        "place one order per currency",
    );
  }
  // Summed in units, never re-parsed: a line total can have more integer digits than parseMoney() accepts,
  // and such a total must still reach the check below (a 400, not a RangeError).
  const totalUnits = items.reduce((sum, i) => sum + multiplyMoneyUnits(i.price, i.qty), 0n);
  const totalAmount = formatMoney(totalUnits);
  if (totalUnits > TOTAL_MAX) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `The order total "${totalAmount}" exceeds the limit of ${formatMoney(TOTAL_MAX)}; split the order`,
    );
  }
  return { items, totalAmount, currency: currencies[0] };
}

/** The running sales of `ids`; when they cannot be known, the order is refused before anything is written. */
async function salePricesOf(ctx: OrderContext, ids: readonly string[]): Promise<ReadonlyMap<string, SalePrice>> {
  try {
    return await ctx.salePrices(ids);
  } catch (error) {
    throw new ProblemError(
      "COMMON.UPSTREAM_UNAVAILABLE",
      "Flash sale prices cannot be read right now, so the order cannot be priced; retry the request (the same " +
        "Idempotency-Key is fine)",
      { cause: error, headers: { "retry-after": "2" } },
    );
  }
}

/**
 * Cancels `order` with the canceled event in one transaction. An order that moved on meanwhile (the
 * customer canceled it) is left as it is: the caller's answer does not change.
 */
async function cancelBySystem(ctx: OrderContext, order: OrderHead, reason: string): Promise<void> {
  try {
    await ctx.sql.transaction((tx) => writeCancel(tx, order, { reason, actor: "system", at: ctx.now() }));
    ctx.nudgeOutbox();
  } catch (error) {
    if (!(error instanceof ProblemError && error.code === "ECOMMERCE.ORDER_INVALID_TRANSITION")) throw error;
    log.info("order changed before the system could cancel it", { orderId: order.id, reason });
  }
}
