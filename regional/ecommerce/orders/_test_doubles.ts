/**
 * @module
 * In-memory stand-ins for the order context's collaborators in unit tests: stock reservations and a
 * payment gateway with the semantics of regional/ecommerce/contracts.ts (idempotent by order id), plus
 * knobs to hold a call open or make it fail. The real gRPC and SOAP implementations are exercised by the
 * journeys.
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type {
  PaymentGateway,
  PaymentRequest,
  PaymentResult,
  ReservationItem,
  ReserveOutcome,
  StockReservations,
} from "../contracts.ts";

type ReservationState = "held" | "confirmed" | "released" | "committed";
type StockMethod = "reserve" | "release" | "confirm" | "commit";

export interface MemoryStock extends StockReservations {
  /** Units on hand not reserved, per product id. */
  available(productId: string): number;
  stateOf(reservationId: string): ReservationState | undefined;
  /** Every call, in order: `reserve:<id>`, `release:<id>` … */
  readonly calls: string[];
  /** The next `reserve` waits until the returned function is called (a request held in flight). */
  holdNextReserve(): { readonly entered: Promise<void>; release(): void };
  /** Makes `method` throw UPSTREAM_UNAVAILABLE until set back to false. */
  setUnavailable(method: StockMethod, down: boolean): void;
}

/** Stock with `onHand` units per product id; reserve is all-or-nothing and idempotent by reservation id. */
export function createMemoryStock(onHand: Readonly<Record<string, number>>): MemoryStock {
  const free = new Map(Object.entries(onHand));
  const reservations = new Map<
    string,
    { items: readonly ReservationItem[]; state: ReservationState; outcome: ReserveOutcome }
  >();
  const calls: string[] = [];
  const down = new Set<StockMethod>();
  let hold: { entered: () => void; gate: Promise<void> } | undefined;

  const check = (method: StockMethod, id: string) => {
    calls.push(`${method}:${id}`);
    if (down.has(method)) throw new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", `Inventory ${method} is down (test)`);
  };
  const giveBack = (id: string) => {
    const reservation = reservations.get(id);
    if (
      !reservation || !reservation.outcome.ok || (reservation.state !== "held" && reservation.state !== "confirmed")
    ) return;
    for (const item of reservation.items) free.set(item.productId, (free.get(item.productId) ?? 0) + item.qty);
    reservation.state = "released";
  };

  return {
    calls,
    available: (productId) => free.get(productId) ?? 0,
    stateOf: (id) => reservations.get(id)?.state,
    holdNextReserve() {
      let entered!: () => void;
      const enteredPromise = new Promise<void>((resolve) => entered = resolve);
      let open!: () => void;
      const gate = new Promise<void>((resolve) => open = resolve);
      hold = { entered, gate };
      return { entered: enteredPromise, release: open };
    },
    setUnavailable(method, isDown) {
      if (isDown) down.add(method);
      else down.delete(method);
    },
    async reserve({ reservationId, items }) {
      check("reserve", reservationId);
      if (hold) {
        const current = hold;
        hold = undefined;
        current.entered();
        await current.gate;
      }
      const earlier = reservations.get(reservationId);
      if (earlier) return earlier.outcome;
      const short = items.find((i) => (free.get(i.productId) ?? 0) < i.qty);
      const outcome: ReserveOutcome = short
        ? { ok: false, productId: short.productId, requested: short.qty, available: free.get(short.productId) ?? 0 }
        : { ok: true };
      if (outcome.ok) { for (const i of items) free.set(i.productId, free.get(i.productId)! - i.qty); }
      reservations.set(reservationId, { items, state: outcome.ok ? "held" : "released", outcome });
      return outcome;
    },
    release(id) {
      check("release", id);
      giveBack(id);
      return Promise.resolve();
    },
    confirm(id) {
      check("confirm", id);
      const reservation = reservations.get(id);
      // As inventory answers: a hold that was released (or expired) can never be confirmed.
      if (reservation?.state === "released") {
        return Promise.reject(new ProblemError("COMMON.CONFLICT", `Reservation "${id}" is released (test)`));
      }
      if (reservation?.state === "held") reservation.state = "confirmed";
      return Promise.resolve();
    },
    commit(id) {
      check("commit", id);
      const reservation = reservations.get(id);
      if (reservation && reservation.state !== "released") reservation.state = "committed";
      return Promise.resolve();
    },
  };
}

export interface ScriptedPayments extends PaymentGateway {
  /** The answer for the next charges: approve, decline, or throw as an unreachable gateway would. */
  setBehaviour(behaviour: "approve" | "decline" | "unavailable"): void;
  /** Distinct orders actually charged (a retried charge of an order counts once). */
  charged(): number;
  readonly requests: PaymentRequest[];
}

/** A gateway idempotent by order id, like the real one: the first result of an order is returned again. */
export function createScriptedPayments(): ScriptedPayments {
  let behaviour: "approve" | "decline" | "unavailable" = "approve";
  const results = new Map<string, PaymentResult>();
  const requests: PaymentRequest[] = [];
  return {
    requests,
    setBehaviour: (b) => behaviour = b,
    charged: () => [...results.values()].filter((r) => r.status === "APPROVED").length,
    charge(request) {
      requests.push(request);
      const earlier = results.get(request.orderId);
      if (earlier) return Promise.resolve(earlier);
      if (behaviour === "unavailable") {
        return Promise.reject(new ProblemError("ECOMMERCE.PAYMENT_UNAVAILABLE", "The gateway is down (test)"));
      }
      const result: PaymentResult = behaviour === "approve"
        ? { status: "APPROVED", authCode: `AUTH-${results.size + 1}`, via: "soap" }
        : { status: "DECLINED", reason: "insufficient funds", via: "soap" };
      results.set(request.orderId, result);
      return Promise.resolve(result);
    },
  };
}
