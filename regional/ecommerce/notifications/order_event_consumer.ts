/**
 * @module
 * The consumer of the order topics: each event is stored once in `order_notifications` (idempotent by
 * eventId), `order_status:{orderId}` is written through from the newest stored row, and the hub is rung so
 * connected clients get it. A record that is not a valid order event throws, so the event log retries it
 * and then dead-letters it to `<topic>.dlq`; a cache failure throws too, and the redelivery (already
 * stored, so not stored twice) writes the cache again.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCanceled, orderCreated, orderFulfilled, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import type { Cache, EventLog, Sql, Subscription } from "../../../shared/ports/mod.ts";
import { latestNotification, recordOrderEvent, type StoredNotification } from "./notification_store.ts";
import { writeOrderStatus } from "./order_status_cache.ts";

/** The topics consumed: the four order lifecycle events. */
export const ORDER_TOPICS: readonly string[] = Object.freeze(
  [orderCreated, orderPaid, orderCanceled, orderFulfilled].map((event) => event.eventType),
);

export interface OrderEventConsumerOptions {
  readonly eventLog: EventLog;
  readonly sql: Sql;
  readonly cache: Cache;
  /** Keep it stable (`ecommerce-<region>.notifications`) so a restart resumes where it left off. */
  readonly groupId: string;
  /** Where a new group starts; "earliest" stores the topics' whole history. @default "earliest" */
  readonly from?: "earliest" | "latest";
  /** Called after each event is stored (also for a redelivered one, which is harmless). */
  readonly onStored: (notification: StoredNotification) => void;
}

/** Subscribes to the order topics; the subscription's `ready` resolves once the group is joined. */
export function startOrderEventConsumer(options: OrderEventConsumerOptions): Promise<Subscription> {
  const { sql, cache } = options;
  return options.eventLog.subscribe({
    groupId: options.groupId,
    topics: ORDER_TOPICS,
    from: options.from ?? "earliest",
    handler: async (record) => {
      const parsed = parseEnvelope(record.value);
      if (!parsed.ok) throw new TypeError(`Not a valid order event: ${parsed.reason}`);
      if (!ORDER_TOPICS.includes(parsed.envelope.eventType)) {
        throw new TypeError(`Expected an order event on "${record.topic}" but got "${parsed.envelope.eventType}"`);
      }
      const envelope = parsed.envelope as typeof parsed.envelope & {
        payload: { readonly orderId: string; readonly userId: string };
      };
      const { notification } = await recordOrderEvent(sql, envelope);
      options.onStored(notification);
      const newest = await latestNotification(sql, { kind: "order", orderId: notification.orderId });
      if (newest) await writeOrderStatus(cache, newest);
    },
  });
}
