/**
 * @module
 * `order_status:{orderId}` (seed 003 section 7, "write-through on event", removed on fulfilment or
 * cancelation): the latest status of an order in flight, written right after its event is stored. The
 * value is derived from the stored rows, not from the event at hand, so a redelivered older event can never
 * set an older status back: the cache converges to the newest row whatever the delivery order.
 */
import type { Cache } from "../../../shared/ports/mod.ts";
import type { StoredNotification } from "./notification_store.ts";

/** Statuses an order never leaves: their key is removed (seed 003: "fulfillment/cancel remove"). */
const FINAL_STATUSES: ReadonlySet<string> = new Set(["FULFILLED", "CANCELED"]);

/** Bound on how long a status of an order that never reaches a final state stays cached. */
export const ORDER_STATUS_TTL_MS = 7 * 24 * 60 * 60_000;

/** The cache key of an order's status. */
export function orderStatusKey(orderId: string): string {
  return `order_status:${orderId}`;
}

/** What `order_status:{orderId}` holds. */
export interface OrderStatusEntry {
  readonly orderId: string;
  readonly userId: string;
  readonly status: string;
  /** Stream position of the event that set it. */
  readonly id: string;
  readonly eventId: string;
  readonly occurredAt: string;
}

/** Writes (or, for a final status, removes) the key from the newest stored notification of the order. */
export async function writeOrderStatus(cache: Cache, newest: StoredNotification): Promise<void> {
  const key = orderStatusKey(newest.orderId);
  if (FINAL_STATUSES.has(newest.status)) {
    await cache.del(key);
    return;
  }
  const entry: OrderStatusEntry = {
    orderId: newest.orderId,
    userId: newest.userId,
    status: newest.status,
    id: newest.id,
    eventId: newest.eventId,
    occurredAt: newest.occurredAt,
  };
  await cache.set(key, JSON.stringify(entry), { ttlMs: ORDER_STATUS_TTL_MS });
}
