/**
 * @module
 * What one order event does to the revenue windows — the single definition both the live projection
 * (rows in SQL) and the replay (maps in memory) apply, so they can only differ if their storage does.
 *
 * Rules, for one order with payment time P and cancellation time C (event times):
 * - paid → +amount and +1 order in the minute of P;
 * - canceled with C ≥ P → −amount and −1 order in the minute of C (a refund lands when it happens);
 * - canceled before it was paid (C < P, or never paid) → contributes nothing;
 * - a second paid or canceled event of the same order (another event id) changes nothing.
 * The outcome does not depend on the order in which the two events arrive: a cancel that arrives first
 * waits in the order's state and is applied when its payment arrives.
 */

/** An order event the projection understands, decoded from its envelope (see `revenue_events.ts`). */
export type RevenueEvent =
  | {
    readonly kind: "paid";
    readonly eventId: string;
    readonly orderId: string;
    /** Units of 10^-4 (shared/contracts/money.ts). */
    readonly amountUnits: bigint;
    readonly currency: string;
    readonly at: Date;
  }
  | { readonly kind: "canceled"; readonly eventId: string; readonly orderId: string; readonly at: Date };

/** What the projection remembers about one order. */
export interface OrderRevenueState {
  readonly paid?: { readonly amountUnits: bigint; readonly currency: string; readonly at: Date };
  readonly canceledAt?: Date;
}

/** A change to one (minute, currency) window. */
export interface WindowDelta {
  readonly windowStart: Date;
  readonly currency: string;
  readonly revenueUnits: bigint;
  readonly orders: number;
}

export interface RevenueOutcome {
  /** False when the event changed nothing (the order already had such an event). */
  readonly changed: boolean;
  readonly state: OrderRevenueState;
  readonly deltas: readonly WindowDelta[];
}

const MINUTE_MS = 60_000;

/** The UTC minute `at` falls in. */
export function windowStartOf(at: Date): Date {
  return new Date(Math.floor(at.getTime() / MINUTE_MS) * MINUTE_MS);
}

/** Applies `event` to the order's `state`: its next state and the window changes it causes. */
export function applyRevenueEvent(state: OrderRevenueState, event: RevenueEvent): RevenueOutcome {
  if (event.kind === "paid") {
    if (state.paid) return { changed: false, state, deltas: [] };
    const paid = { amountUnits: event.amountUnits, currency: event.currency, at: event.at };
    const next = { ...state, paid };
    if (state.canceledAt === undefined) return { changed: true, state: next, deltas: [credit(paid)] };
    // The cancel arrived first: it is a refund if it happened after the payment, otherwise the order never
    // counted.
    const deltas = state.canceledAt >= paid.at ? [credit(paid), debit(paid, state.canceledAt)] : [];
    return { changed: true, state: next, deltas };
  }
  if (state.canceledAt !== undefined) return { changed: false, state, deltas: [] };
  const next = { ...state, canceledAt: event.at };
  if (!state.paid) return { changed: true, state: next, deltas: [] };
  // Canceled "before" a payment already counted (only possible with skewed event times): undo the credit
  // where it was made, so the order contributes nothing.
  const deltas = event.at >= state.paid.at ? [debit(state.paid, event.at)] : [debit(state.paid, state.paid.at)];
  return { changed: true, state: next, deltas };
}

function credit(paid: NonNullable<OrderRevenueState["paid"]>): WindowDelta {
  return { windowStart: windowStartOf(paid.at), currency: paid.currency, revenueUnits: paid.amountUnits, orders: 1 };
}

function debit(paid: NonNullable<OrderRevenueState["paid"]>, at: Date): WindowDelta {
  return { windowStart: windowStartOf(at), currency: paid.currency, revenueUnits: -paid.amountUnits, orders: -1 };
}
