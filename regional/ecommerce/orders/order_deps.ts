/** @module What the order context is given by the wiring, with every bound defaulted in one place. */
import type { TokenVerifier } from "../../../shared/auth/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import type { PaymentGateway, StockReservations } from "../contracts.ts";

export interface OrderRoutesDeps {
  readonly sql: Sql;
  readonly verifier: TokenVerifier;
  readonly stock: StockReservations;
  readonly payments: PaymentGateway;
  /** Wakes the outbox relay after a commit that appended events. */
  readonly nudgeOutbox: () => void;
  /** How long a reservation holds stock before it lapses unless paid. @default 900 */
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
  readonly reservationTtlSec: number;
  readonly stockTimeoutMs: number;
  readonly paymentTimeoutMs: number;
  readonly now: () => Date;
}

/** The event producer name of this context. */
export const ORDER_PRODUCER = "order-service";

export function orderContextOf(deps: OrderRoutesDeps): OrderContext {
  const context: OrderContext = {
    sql: deps.sql,
    stock: deps.stock,
    payments: deps.payments,
    nudgeOutbox: deps.nudgeOutbox,
    reservationTtlSec: deps.reservationTtlSec ?? 900,
    stockTimeoutMs: deps.stockTimeoutMs ?? 5_000,
    paymentTimeoutMs: deps.paymentTimeoutMs ?? 30_000,
    now: deps.now ?? (() => new Date()),
  };
  for (const name of ["sql", "stock", "payments", "nudgeOutbox"] as const) {
    if (!context[name]) throw new TypeError(`createOrderRoutes requires deps.${name}`);
  }
  if (!(Number.isInteger(context.reservationTtlSec) && context.reservationTtlSec >= 1)) {
    throw new RangeError(`reservationTtlSec must be a positive integer, got ${context.reservationTtlSec}`);
  }
  for (const name of ["stockTimeoutMs", "paymentTimeoutMs"] as const) {
    if (!(context[name] > 0)) throw new RangeError(`${name} must be positive, got ${context[name]}`);
  }
  return Object.freeze(context);
}
