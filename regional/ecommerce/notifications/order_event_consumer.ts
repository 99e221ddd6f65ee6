/**
 * @module
 * The consumer of the order topics: each event is stored once in `order_notifications` (idempotent by
 * eventId), `order_status:{orderId}` is written through from the newest stored row, and the hub is rung so
 * connected clients get it. A record that is not a valid order event throws, so the event log retries it
 * and then dead-letters it to `<topic>.dlq`; a cache failure throws too, and the redelivery (already
 * stored, so not stored twice) writes the cache again.
 *
 * On an event log with batches (Kafka) a fetch is stored in one transaction, the hub rung for every row,
 * then each order's status written once: per-event transactions and commits capped the consumer near
 * 100 events/s on a busy process (bench `order_to_websocket`). A record that is not an order event is then
 * dead-lettered at once (retrying cannot fix it) and the rest of its batch is stored.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCanceled, orderCreated, orderFulfilled, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import type { Envelope } from "../../../shared/contracts/envelope.ts";
import {
  type Cache,
  dlqRecordOf,
  dlqTopicOf,
  type EventLog,
  type IncomingRecord,
  type Sql,
  type Subscription,
} from "../../../shared/ports/mod.ts";
import {
  latestNotification,
  latestNotificationsOfOrders,
  recordOrderEvent,
  recordOrderEvents,
  type StoredNotification,
} from "./notification_store.ts";
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

/** Records per stored batch at most (one transaction; the lock it holds serialises every insert). */
export const ORDER_EVENT_BATCH_MAX = 200;

type OrderEnvelope = Envelope<{ readonly orderId: string; readonly userId: string }>;

/** The order envelope a record carries; throws a TypeError naming what is wrong. */
function orderEnvelopeOf(record: IncomingRecord): OrderEnvelope {
  const parsed = parseEnvelope(record.value);
  if (!parsed.ok) throw new TypeError(`Not a valid order event: ${parsed.reason}`);
  if (!ORDER_TOPICS.includes(parsed.envelope.eventType)) {
    throw new TypeError(`Expected an order event on "${record.topic}" but got "${parsed.envelope.eventType}"`);
  }
  return parsed.envelope as OrderEnvelope;
}

/** Subscribes to the order topics; the subscription's `ready` resolves once the group is joined. */
export function startOrderEventConsumer(options: OrderEventConsumerOptions): Promise<Subscription> {
  const { sql, cache, eventLog } = options;
  const common = { groupId: options.groupId, topics: ORDER_TOPICS, from: options.from ?? "earliest" } as const;
  if (eventLog.subscribeBatches) {
    return eventLog.subscribeBatches({
      ...common,
      batchMax: ORDER_EVENT_BATCH_MAX,
      handler: async (records) => {
        const envelopes: OrderEnvelope[] = [];
        for (const record of records) {
          try {
            envelopes.push(orderEnvelopeOf(record));
          } catch (error) {
            await eventLog.publish(dlqTopicOf(record.topic), [dlqRecordOf(record, error, 1)]);
          }
        }
        const stored = await recordOrderEvents(sql, envelopes);
        // Clients first: the cache is for readers that poll, the sockets are waiting now.
        for (const { notification } of stored) options.onStored(notification);
        const orderIds = [...new Set(stored.map(({ notification }) => notification.orderId))];
        const newest = await latestNotificationsOfOrders(sql, orderIds);
        for (const notification of newest.values()) await writeOrderStatus(cache, notification);
      },
    });
  }
  return eventLog.subscribe({
    ...common,
    handler: async (record) => {
      const { notification } = await recordOrderEvent(sql, orderEnvelopeOf(record));
      options.onStored(notification);
      const newest = await latestNotification(sql, { kind: "order", orderId: notification.orderId });
      if (newest) await writeOrderStatus(cache, newest);
    },
  });
}
