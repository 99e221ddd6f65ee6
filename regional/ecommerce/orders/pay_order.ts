/**
 * @module
 * Paying a RESERVED order. APPROVED → stock confirmed, then PAID with the paid event; DECLINED → CANCELED
 * with the canceled event (reason "payment declined"), stock released, 402; gateway unreachable or too
 * slow → 503 and the order stays RESERVED. Every attempt is recorded in `payments`. The gateway is
 * idempotent by order id, so a retried payment never charges twice.
 */
import type { Principal } from "../../../shared/auth/mod.ts";
import { orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { PaymentRequest, PaymentResult } from "../contracts.ts";
import { appendToOutbox, envelopeFor } from "../outbox/mod.ts";
import { authorizeOrder } from "./authorize.ts";
import { releaseQuietly, withTimeout } from "./bounded_calls.ts";
import { loadOrder, viewOf, writeCancel } from "./order_actions.ts";
import { HOLD_MARGIN_MS, ORDER_PRODUCER, type OrderContext } from "./order_deps.ts";
import { type OrderHead, type OrderView, recordPayment, transitionOrder } from "./order_store.ts";

/** The reason carried by the canceled event when the gateway declines (consumers may branch on it). */
export const PAYMENT_DECLINED_REASON = "payment declined";
/** The reason carried by the canceled event when the order's stock hold lapsed before it was paid. */
export const RESERVATION_EXPIRED_REASON = "reservation expired";

type Approved = Extract<PaymentResult, { status: "APPROVED" }>;
type Declined = Extract<PaymentResult, { status: "DECLINED" }>;

/** Charges the order and moves it to PAID, or cancels it when the charge is declined. */
export async function payOrder(ctx: OrderContext, principal: Principal, id: string): Promise<OrderView> {
  const order = await loadOrder(ctx, id);
  authorizeOrder("order.pay", principal, order);
  // Inventory holds the stock `reservationTtlSec` from the reservation, which came after the order was
  // created: `createdAt + TTL` is a lower bound of the hold's end. A charge that might still run when the
  // hold lapses is not started — the money would be taken for stock that went back on sale.
  const holdEndsBy = order.createdAt.getTime() + ctx.reservationTtlSec * 1_000;
  if (ctx.now().getTime() + ctx.paymentTimeoutMs + ctx.stockTimeoutMs + HOLD_MARGIN_MS > holdEndsBy) {
    await cancelLapsed(lapseDepsOf(ctx), order);
    throw reservationExpired(order.id, "before the payment could finish");
  }
  const charge: PaymentRequest = { orderId: order.id, amount: order.totalAmount, currency: order.currency };
  const result = await chargeOrThrow(ctx, charge);
  if (result.status === "DECLINED") return await decline(ctx, order, charge, result);
  return await complete(ctx, principal, order, charge, result);
}

async function chargeOrThrow(ctx: OrderContext, charge: PaymentRequest): Promise<PaymentResult> {
  try {
    return await withTimeout(ctx.payments.charge(charge), ctx.paymentTimeoutMs, "The payment gateway");
  } catch (error) {
    await recordPayment(ctx.sql, {
      ...charge,
      status: "UNAVAILABLE",
      reason: String(error).slice(0, 500),
      at: ctx.now(),
    });
    throw new ProblemError(
      "ECOMMERCE.PAYMENT_UNAVAILABLE",
      `The payment gateway is unavailable; order "${charge.orderId}" stays RESERVED — retry the payment shortly ` +
        "(a retried charge is never taken twice)",
      { cause: error, headers: { "retry-after": "5" } },
    );
  }
}

async function decline(ctx: OrderContext, order: OrderHead, charge: PaymentRequest, result: Declined): Promise<never> {
  await ctx.sql.transaction(async (tx) => {
    await recordPayment(tx, { ...charge, status: "DECLINED", reason: result.reason, via: result.via, at: ctx.now() });
    await writeCancel(tx, order, { reason: PAYMENT_DECLINED_REASON, actor: "system", at: ctx.now() });
  });
  ctx.nudgeOutbox();
  await releaseQuietly(ctx, order.id);
  throw new ProblemError(
    "ECOMMERCE.PAYMENT_DECLINED",
    `Payment for order "${order.id}" was declined ("${result.reason.slice(0, 200)}"); the order is canceled — ` +
      "place a new order with another payment method",
  );
}

async function complete(
  ctx: OrderContext,
  principal: Principal,
  order: OrderHead,
  charge: PaymentRequest,
  result: Approved,
): Promise<OrderView> {
  const attempt = { ...charge, status: "APPROVED" as const, authCode: result.authCode, via: result.via };
  // Confirmed before PAID is committed: if confirming fails the order stays RESERVED and a retry repeats the
  // (idempotent) charge and confirmation; committing PAID first could leave a PAID order whose stock lapses.
  try {
    await withTimeout(ctx.stock.confirm(order.id), ctx.stockTimeoutMs, "Inventory");
  } catch (error) {
    await recordPayment(ctx.sql, { ...attempt, at: ctx.now() });
    if (error instanceof ProblemError && error.code === "COMMON.CONFLICT") {
      // The hold is gone for good (released or expired): a retry could never confirm it. The order is
      // canceled so it stops asking for a payment, and the approved charge is flagged for a refund.
      log.error("an approved charge found its stock hold gone; the order is canceled and the charge needs a refund", {
        orderId: order.id,
        authCode: result.authCode,
        error: String(error),
      });
      await cancelLapsed(lapseDepsOf(ctx), order);
      throw reservationExpired(order.id, "while the payment ran; the approved charge will be refunded");
    }
    throw new ProblemError(
      "COMMON.UPSTREAM_UNAVAILABLE",
      `Payment for order "${order.id}" was approved but its stock could not be confirmed; retry the payment ` +
        "(you will not be charged twice)",
      { cause: error, headers: { "retry-after": "2" } },
    );
  }
  try {
    const paid = await ctx.sql.transaction(async (tx) => {
      await recordPayment(tx, { ...attempt, at: ctx.now() });
      const reason = `payment approved via ${result.via}`;
      const next = await transitionOrder(tx, order, { to: "PAID", reason, actor: principal.userId, at: ctx.now() });
      const payload = {
        orderId: order.id,
        userId: order.userId,
        amount: order.totalAmount,
        currency: order.currency,
        authCode: result.authCode,
      };
      await appendToOutbox(tx, envelopeFor(orderPaid, payload, ORDER_PRODUCER));
      return next;
    });
    ctx.nudgeOutbox();
    return await viewOf(ctx, paid);
  } catch (error) {
    // Canceled while the charge ran: money was taken for a canceled order, and there is no refund port yet.
    log.error("an approved charge could not mark its order PAID; it needs a refund", {
      orderId: order.id,
      authCode: result.authCode,
      error: String(error),
    });
    throw error;
  }
}

/** What {@linkcode cancelLapsed} needs: the order service's context, or the lapse sweeper's. */
export type LapseDeps = Pick<OrderContext, "sql" | "now" | "nudgeOutbox"> & {
  /** Gives the order's stock back (idempotent); a failure is left to the canceled event's consumer. */
  readonly release: (orderId: string) => Promise<void>;
};

/**
 * Cancels an open order whose stock hold lapsed, with the canceled event (whose consumer in inventory also
 * releases the stock, durably), then releases the stock at once. False when the order moved on meanwhile.
 */
export async function cancelLapsed(ctx: LapseDeps, order: OrderHead): Promise<boolean> {
  try {
    await ctx.sql.transaction((tx) =>
      writeCancel(tx, order, { reason: RESERVATION_EXPIRED_REASON, actor: "system", at: ctx.now() })
    );
  } catch (error) {
    if (error instanceof ProblemError && error.code === "ECOMMERCE.ORDER_INVALID_TRANSITION") return false;
    throw error;
  }
  ctx.nudgeOutbox();
  await ctx.release(order.id);
  return true;
}

function lapseDepsOf(ctx: OrderContext): LapseDeps {
  return { ...ctx, release: (orderId) => releaseQuietly(ctx, orderId) };
}

function reservationExpired(orderId: string, when: string): ProblemError {
  return new ProblemError(
    "ECOMMERCE.RESERVATION_EXPIRED",
    `The stock held for order "${orderId}" lapses ${when}; the order is canceled — place a new order`,
  );
}
