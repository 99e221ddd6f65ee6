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
 *
 * Each order's events are stored in lifecycle order (`lifecycle_gate.ts`): an event whose predecessor is
 * not stored yet is held back, uncommitted, and delivered again after the log's backoff, for at most
 * `holdMs`; then it is stored anyway with a warning. On Kafka a held record fails its batch, so the records
 * after it in its partition (later batches; the rest of its own batch is stored at once) wait for the
 * backoff, and the retried batch re-delivers records already stored, which the eventId check skips.
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
  type OutgoingRecord,
  retryLaterOnFailure,
  type Sql,
  type Subscription,
} from "../../../shared/ports/mod.ts";
import { createLifecycleGate, type LifecycleGate } from "./lifecycle_gate.ts";
import { latestNotificationsOfOrders, recordOrderEvents, type StoredNotification } from "./notification_store.ts";
import { writeOrderStatus } from "./order_status_cache.ts";

/** The topics consumed: the four order lifecycle events. */
export const ORDER_TOPICS: readonly string[] = Object.freeze(
  [orderCreated, orderPaid, orderCanceled, orderFulfilled].map((event) => event.eventType),
);

export interface OrderEventConsumerOptions {
  readonly eventLog: EventLog;
  readonly sql: Sql;
  readonly cache: Cache;
  /**
   * Keep it stable (`ecommerce-<region>.notifications`) so a restart resumes where it left off; each topic
   * gets its own group, `<groupId>.<created|paid|canceled|fulfilled>`.
   */
  readonly groupId: string;
  /** Where a new group starts; "earliest" stores the topics' whole history. @default "earliest" */
  readonly from?: "earliest" | "latest";
  /** Called after each event is stored (also for a redelivered one, which is harmless). */
  readonly onStored: (notification: StoredNotification) => void;
  /** How long an event waits for its predecessor (`lifecycle_gate.ts`). @default 5_000 */
  readonly holdMs?: number;
}

/** Records per stored batch at most (one transaction; the lock it holds serialises every insert). */
export const ORDER_EVENT_BATCH_MAX = 200;

/**
 * Deliveries of a record at most. One more than the event log's default: with its backoff (200 ms doubling)
 * the 6th delivery comes about 6.2 s after the first, just past the 5 s hold, so the time bound is what
 * normally ends a hold; the gate also stores the event on this last delivery, so a hold never dead-letters.
 */
export const ORDER_EVENT_ATTEMPTS_MAX = 6;

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

/** Thrown to leave held-back events uncommitted, so the event log delivers them again after its backoff. */
export class OrderEventsHeldBack extends Error {
  constructor(readonly eventIds: readonly string[]) {
    super(`${eventIds.length} order event(s) held back until their predecessor is stored: ${eventIds.join(", ")}`);
    this.name = "OrderEventsHeldBack";
  }
}

/**
 * Subscribes to the order topics, one group member per topic (`<groupId>.<created|paid|canceled|fulfilled>`):
 * a member retrying a held-back `paid` sleeps in its backoff and fetches nothing meanwhile, so the `created`
 * it waits for must come through another member. The subscription's `ready` resolves once all four joined.
 */
export async function startOrderEventConsumer(options: OrderEventConsumerOptions): Promise<Subscription> {
  const gate = createLifecycleGate({ holdMs: options.holdMs, attemptsMax: ORDER_EVENT_ATTEMPTS_MAX });
  // The four members write the cache concurrently; reading an order's newest row and writing it must not
  // interleave with another member's, or an older status read first could be written last.
  let cacheTail = Promise.resolve();
  const serially = (write: () => Promise<void>) => {
    const run = cacheTail.then(write);
    cacheTail = run.catch(() => {});
    return run;
  };
  const context: ConsumerContext = { options, gate, serially };
  const subscriptions: Subscription[] = [];
  try {
    for (const topic of ORDER_TOPICS) subscriptions.push(await subscribeTopic(context, topic));
  } catch (error) {
    await Promise.allSettled(subscriptions.map((s) => s.close()));
    throw error;
  }
  return {
    ready: Promise.all(subscriptions.map((s) => s.ready)).then(() => {}),
    close: async () => {
      await Promise.all(subscriptions.map((s) => s.close()));
    },
  };
}

/**
 * Stores what the gate admits, rings the hub and writes the cache for it, then throws if anything was held
 * back: the rest of the batch reaches clients now, the held events come again (idempotent by eventId).
 */
async function store({ options, gate, serially }: ConsumerContext, envelopes: OrderEnvelope[]) {
  const { sql, cache } = options;
  const held: string[] = [];
  const stored = await recordOrderEvents(sql, envelopes, (envelope, types) => {
    const admitted = gate.admit(envelope, types);
    if (!admitted) held.push(envelope.eventId);
    return admitted;
  });
  // Clients first: the cache is for readers that poll, the sockets are waiting now.
  for (const { notification } of stored) options.onStored(notification);
  const orderIds = [...new Set(stored.map(({ notification }) => notification.orderId))];
  await serially(async () => {
    const newest = await latestNotificationsOfOrders(sql, orderIds);
    for (const notification of newest.values()) await writeOrderStatus(cache, notification);
  });
  if (held.length > 0) throw new OrderEventsHeldBack(held);
}

/**
 * {@link store}, with every failure but a hold made a `RetryLaterError` (shared/ports/event_log.ts): the events are valid, so a
 * database or Redis outage is waited out (redelivered for as long as it lasts) instead of dead-lettering them,
 * which would lose them for every WebSocket and SSE client. A hold stays a counted failure: the gate's last
 * attempt stores the event anyway.
 */
function storeOrRetryLater(context: ConsumerContext, envelopes: OrderEnvelope[]): Promise<void> {
  return retryLaterOnFailure(
    "Storing order notifications",
    () => store(context, envelopes),
    (error) => error instanceof OrderEventsHeldBack,
  );
}

interface ConsumerContext {
  readonly options: OrderEventConsumerOptions;
  readonly gate: LifecycleGate;
  readonly serially: (write: () => Promise<void>) => Promise<void>;
}

function subscribeTopic(context: ConsumerContext, topic: string) {
  const { options } = context;
  const { eventLog } = options;
  const common = {
    groupId: `${options.groupId}.${topic.split(".")[3]}`,
    topics: [topic],
    from: options.from ?? "earliest",
    maxAttempts: ORDER_EVENT_ATTEMPTS_MAX,
  } as const;
  if (eventLog.subscribeBatches) {
    return eventLog.subscribeBatches({
      ...common,
      batchMax: ORDER_EVENT_BATCH_MAX,
      handler: async (records) => {
        const envelopes: OrderEnvelope[] = [];
        const malformed: OutgoingRecord[] = [];
        for (const record of records) {
          try {
            envelopes.push(orderEnvelopeOf(record));
          } catch (error) {
            malformed.push(dlqRecordOf(record, error, 1));
          }
        }
        await storeOrRetryLater(context, envelopes);
        // Only after the store succeeded: a batch that is retried (a held-back event, a database error)
        // would otherwise dead-letter the same malformed record once per delivery.
        if (malformed.length > 0) {
          await retryLaterOnFailure(
            "Dead-lettering malformed order events",
            () => eventLog.publish(dlqTopicOf(records[0].topic), malformed),
          );
        }
      },
    });
  }
  // A malformed record throws before the store (counted: dead-lettered after the last attempt).
  return eventLog.subscribe({ ...common, handler: (record) => storeOrRetryLater(context, [orderEnvelopeOf(record)]) });
}
