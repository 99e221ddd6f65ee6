/**
 * @module
 * Lifecycle order for an order's notifications. An order's events travel on four topics, so the consumer
 * can see `paid` before `created` when both are published close together. The gate decides, for an event
 * about to be stored, whether its predecessor is stored already; if not, the consumer holds it back (stores
 * nothing for it and leaves it uncommitted) and the event log delivers it again after its backoff. The hold
 * is bounded: past `holdMs`, or on the subscription's last attempt, the event is stored anyway with a
 * warning, so a lost `created` delays an order's later events by seconds but never blocks them or sends
 * them to a dead-letter topic.
 */
import type { Envelope } from "../../../shared/contracts/envelope.ts";
import { log } from "../../../shared/observability/mod.ts";

/**
 * The event each order event must follow (the order service's lifecycle PENDING → RESERVED → PAID →
 * FULFILLED, or CANCELED from PENDING, RESERVED or PAID; RESERVED announces no event). `canceled` needs
 * only `created`: nothing in a cancelation says whether the order had been paid, so waiting for a `paid`
 * could hold every cancelation of an unpaid order for the whole bound.
 */
export const PREDECESSOR_BY_EVENT_TYPE: Readonly<Record<string, string | null>> = Object.freeze({
  "ecommerce.order.order.created.v1": null,
  "ecommerce.order.order.paid.v1": "ecommerce.order.order.created.v1",
  "ecommerce.order.order.canceled.v1": "ecommerce.order.order.created.v1",
  "ecommerce.order.order.fulfilled.v1": "ecommerce.order.order.paid.v1",
});

/** How long an event waits for its predecessor at most, unless the caller says otherwise. */
export const LIFECYCLE_HOLD_MS_DEFAULT = 5_000;
/**
 * Events tracked as held at once. Past it a new event is stored at once (with the warning) instead of held:
 * forgetting a held one would restart its count below the event log's attempt number, so the log's last
 * attempt could come while the gate still held it, and the event would be dead-lettered.
 */
export const HELD_EVENTS_MAX = 10_000;

export interface LifecycleGateOptions {
  /** Hold an event at most this long after its first delivery. @default 5_000 */
  readonly holdMs?: number;
  /** The subscription's `maxAttempts`: on that delivery an event is stored whatever is missing. */
  readonly attemptsMax: number;
  /** Injected clock (tests). @default Date.now */
  readonly now?: () => number;
}

/** Decides per delivery whether an order event is stored now or held back. */
export interface LifecycleGate {
  /**
   * True when `envelope` may be stored now: it has no predecessor, its predecessor is among
   * `storedEventTypes` (the order's event types stored so far), or the bound is reached. Call it once per
   * delivery of the event: each call counts as an attempt.
   */
  admit(envelope: Envelope<{ readonly orderId: string }>, storedEventTypes: ReadonlySet<string>): boolean;
  /** Events currently held (metrics, tests). */
  heldCount(): number;
}

interface Held {
  readonly firstSeenMs: number;
  deliveries: number;
}

/** A gate with its own bounded memory of held events. */
export function createLifecycleGate(options: LifecycleGateOptions): LifecycleGate {
  const holdMs = options.holdMs ?? LIFECYCLE_HOLD_MS_DEFAULT;
  if (!(Number.isInteger(holdMs) && holdMs >= 0 && holdMs <= 600_000)) {
    throw new RangeError(`holdMs must be an integer from 0 to 600000, got ${holdMs}`);
  }
  if (!(Number.isInteger(options.attemptsMax) && options.attemptsMax >= 1)) {
    throw new RangeError(`attemptsMax must be a positive integer, got ${options.attemptsMax}`);
  }
  const now = options.now ?? Date.now;
  const held = new Map<string, Held>();
  return {
    admit(envelope, storedEventTypes) {
      const predecessor = PREDECESSOR_BY_EVENT_TYPE[envelope.eventType];
      if (predecessor === undefined) throw new TypeError(`"${envelope.eventType}" is not an order event`);
      if (predecessor === null || storedEventTypes.has(predecessor)) {
        held.delete(envelope.eventId);
        return true;
      }
      let entry = held.get(envelope.eventId);
      if (entry === undefined) {
        entry = { firstSeenMs: now(), deliveries: 0 };
        if (held.size < HELD_EVENTS_MAX) held.set(envelope.eventId, entry);
        else entry.deliveries = options.attemptsMax; // Full: stored now (below), never forgotten later.
      }
      entry.deliveries++;
      const waitedMs = now() - entry.firstSeenMs;
      // Our count is never below the event log's attempt number (it also counts earlier fetches), so the
      // log's last attempt always stores the event: a missing predecessor never dead-letters it.
      if (waitedMs < holdMs && entry.deliveries < options.attemptsMax) return false;
      held.delete(envelope.eventId);
      log.warn("order event stored without its predecessor; the order's status changes may be out of order", {
        orderId: envelope.payload.orderId,
        eventId: envelope.eventId,
        eventType: envelope.eventType,
        missing: predecessor,
        waitedMs,
        deliveries: entry.deliveries,
      });
      return true;
    },
    heldCount: () => held.size,
  };
}
