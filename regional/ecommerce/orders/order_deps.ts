/** @module What the order context is given by the wiring, with every bound defaulted in one place. */
import type { TokenVerifier } from "../../../shared/auth/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import type { PaymentGateway, SalePrices, StockReservations } from "../contracts.ts";
import { RESERVATION_TTL_SEC_MAX } from "../inventory/mod.ts";

export interface OrderRoutesDeps {
  readonly sql: Sql;
  readonly verifier: TokenVerifier;
  readonly stock: StockReservations;
  readonly payments: PaymentGateway;
  /** Wakes the outbox relay after a commit that appended events. */
  readonly nudgeOutbox: () => void;
  /**
   * The running flash sales: a product on sale is charged its sale price (flash_sales/sale_prices.ts).
   * @default no sales: list prices only
   */
  readonly salePrices?: SalePrices;
  /** How long a reservation holds stock before it lapses unless paid; 1 to 3600 (inventory's max). @default 900 */
  readonly reservationTtlSec?: number;
  /** Bound on each inventory call (reserve, release, confirm, commit). @default 5000 */
  readonly stockTimeoutMs?: number;
  /**
   * Bound on one charge. The payment adapter retries up to 5 times with backoff inside it, so this is the
   * outer bound on all of that. @default 30000
   */
  readonly paymentTimeoutMs?: number;
  /** Idempotency-Key retention and in-flight lease. @default 24 h and 120 s */
  readonly idempotency?: { readonly ttlMs?: number; readonly inFlightLeaseMs?: number };
  /** Injected clock. @default () => new Date() */
  readonly now?: () => Date;
}

/** The deps with defaults applied. */
export interface OrderContext {
  readonly sql: Sql;
  readonly stock: StockReservations;
  readonly payments: PaymentGateway;
  readonly nudgeOutbox: () => void;
  readonly salePrices: SalePrices;
  readonly reservationTtlSec: number;
  readonly stockTimeoutMs: number;
  readonly paymentTimeoutMs: number;
  readonly now: () => Date;
}

/**
 * Slack on top of the payment and inventory bounds when deciding whether a charge can finish before the
 * order's stock hold lapses (pay_order.ts).
 */
export const HOLD_MARGIN_MS = 5_000;

/** The event producer name of this context. */
export const ORDER_PRODUCER = "order-service";

export function orderContextOf(deps: OrderRoutesDeps): OrderContext {
  const context: OrderContext = {
    sql: deps.sql,
    stock: deps.stock,
    payments: deps.payments,
    nudgeOutbox: deps.nudgeOutbox,
    salePrices: deps.salePrices ?? (() => Promise.resolve(new Map())),
    reservationTtlSec: deps.reservationTtlSec ?? 900,
    stockTimeoutMs: deps.stockTimeoutMs ?? 5_000,
    paymentTimeoutMs: deps.paymentTimeoutMs ?? 30_000,
    now: deps.now ?? (() => new Date()),
  };
  for (const name of ["sql", "stock", "payments", "nudgeOutbox"] as const) {
    if (!context[name]) throw new TypeError(`createOrderRoutes requires deps.${name}`);
  }
  // Inventory refuses a longer reservation: every order would fail with 503, so it fails here at setup.
  const ttlSec = context.reservationTtlSec;
  if (!(Number.isInteger(ttlSec) && ttlSec >= 1 && ttlSec <= RESERVATION_TTL_SEC_MAX)) {
    throw new RangeError(
      `reservationTtlSec must be an integer from 1 to ${RESERVATION_TTL_SEC_MAX} (inventory's maximum), got ${ttlSec}`,
    );
  }
  for (const name of ["stockTimeoutMs", "paymentTimeoutMs"] as const) {
    if (!(context[name] > 0)) throw new RangeError(`${name} must be positive, got ${context[name]}`);
  }
  // A payment is started only if it can finish within the hold (pay_order.ts): a shorter hold makes every
  // order unpayable, so it fails here at setup.
  const payBoundMs = context.paymentTimeoutMs + context.stockTimeoutMs + HOLD_MARGIN_MS;
  if (ttlSec * 1_000 < 2 * payBoundMs) {
    throw new RangeError(
      `reservationTtlSec (${ttlSec}) must be at least ${Math.ceil((2 * payBoundMs) / 1_000)} s: twice the longest ` +
        `payment (paymentTimeoutMs ${context.paymentTimeoutMs} + stockTimeoutMs ${context.stockTimeoutMs} + ` +
        `${HOLD_MARGIN_MS} ms), or orders could barely be paid before their stock hold lapses`,
    );
  }
  return Object.freeze(context);
}
