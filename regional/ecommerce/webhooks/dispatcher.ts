/**
 * @module
 * The dispatcher: consumes the order events and enqueues one delivery per matching active subscription on
 * the work queue (publisher confirms). The enqueueing runs inside `processOnce` for the event: the marker
 * commits only after every publish was confirmed, so a crash or a broker outage mid-way makes the event
 * log deliver the record again and the whole fan-out is redone. Re-published deliveries keep their id
 * (derived from subscription and event), and the worker is idempotent by it.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCanceled, orderCreated, orderFulfilled, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import client from "prom-client";
import { log, metrics } from "../../../shared/observability/mod.ts";
import {
  type EventLog,
  retryLaterOnFailure,
  type Sql,
  type Subscription,
  type WorkQueue,
} from "../../../shared/ports/mod.ts";
import { processOnce } from "../outbox/mod.ts";
import { type DeliveryMessage, laneOf, laneQueueOf } from "./delivery_queues.ts";
import { activeSubscriptionIdsFor } from "./subscription_store.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";

/** The events partners may subscribe to. */
export const WEBHOOK_EVENT_TYPES: readonly string[] = Object.freeze([
  orderCreated.eventType,
  orderPaid.eventType,
  orderCanceled.eventType,
  orderFulfilled.eventType,
]);
/**
 * Bound on the fan-out of one event: more matching subscriptions than this are a configuration error. The rest
 * are not enqueued; the cut is logged and counted (`bv_webhook_fanout_cut_total`).
 */
export const FANOUT_MAX = 10_000;
/** Publishes in flight at once for one event. */
const PUBLISH_CONCURRENCY = 32;
const CONSUMER_NAME = "webhooks-dispatcher";

const fanoutCutTotal = new client.Counter({
  name: "bv_webhook_fanout_cut_total",
  help: "Events whose webhook fan-out was cut at FANOUT_MAX matching subscriptions (some partners missed them)",
  labelNames: ["event_type"] as const,
  registers: [metrics.registry],
});

export interface DispatcherOptions {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  readonly queue: WorkQueue;
  readonly groupId: string;
  /** @default "latest": a new group starts with events published after it joined. */
  readonly from?: "earliest" | "latest";
}

export async function startDispatcher(options: DispatcherOptions): Promise<Subscription> {
  const { sql, queue } = options;
  return await options.eventLog.subscribe({
    groupId: options.groupId,
    topics: WEBHOOK_EVENT_TYPES,
    from: options.from ?? "latest",
    batchWindowMs: BACKGROUND_CONSUMER_WINDOW_MS,
    handler: async (record) => {
      const parsed = parseEnvelope(record.value);
      // A malformed record is thrown back: the event log retries it, then dead-letters it with the reason.
      if (!parsed.ok) throw new TypeError(`Cannot dispatch a record of "${record.topic}": ${parsed.reason}`);
      const { envelope } = parsed;
      // From here the record is valid: a failure is the database's or RabbitMQ's, and is retried for as long
      // as it lasts (never dead-lettered: a partner would miss the event).
      let count = 0;
      await retryLaterOnFailure("Enqueuing webhook deliveries", async () => {
        // Most events match no subscription: one read outside a transaction instead of processOnce's four
        // statements per event (the order path's events reach this consumer at the order rate). A subscription
        // made after this read sees the next events, as it would had it been made a moment later.
        if ((await activeSubscriptionIdsFor(sql, envelope.eventType, 1)).length === 0) return;
        await processOnce(sql, CONSUMER_NAME, envelope.eventId, async (tx) => {
          // One more than the bound tells a cut fan-out from one that reached it exactly.
          const found = await activeSubscriptionIdsFor(tx, envelope.eventType, FANOUT_MAX + 1);
          const ids = found.slice(0, FANOUT_MAX);
          if (found.length > FANOUT_MAX) {
            // Only the first FANOUT_MAX (by id) get this event: an operator must raise the bound or find why so
            // many subscriptions match (a partner's limit is 25; this many means very many partners, or a bug).
            fanoutCutTotal.inc({ event_type: envelope.eventType });
            log.warn("webhook fan-out cut: more active subscriptions match than FANOUT_MAX", {
              eventId: envelope.eventId,
              eventType: envelope.eventType,
              fanoutMax: FANOUT_MAX,
            });
          }
          const body = JSON.stringify({
            type: envelope.eventType,
            timestamp: envelope.occurredAt,
            eventId: envelope.eventId,
            data: envelope.payload,
          });
          const messages = await Promise.all(ids.map(async (subscriptionId): Promise<DeliveryMessage> => ({
            v: 1,
            deliveryId: await deliveryIdOf(subscriptionId, envelope.eventId),
            subscriptionId,
            eventId: envelope.eventId,
            eventType: envelope.eventType,
            body,
          })));
          for (let i = 0; i < messages.length; i += PUBLISH_CONCURRENCY) {
            await Promise.all(
              messages.slice(i, i + PUBLISH_CONCURRENCY).map((message) =>
                queue.publish(laneQueueOf(laneOf(message.deliveryId)), JSON.stringify(message), {
                  id: message.deliveryId,
                  headers: { "event-type": message.eventType, "subscription-id": message.subscriptionId },
                })
              ),
            );
          }
          count = messages.length;
        });
      });
      if (count > 0) log.debug("webhook deliveries enqueued", { eventId: envelope.eventId, count });
    },
  });
}

/** A UUID derived from (subscription, event): SHA-256, shaped as a version-8 UUID (RFC 9562). */
export async function deliveryIdOf(subscriptionId: string, eventId: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${subscriptionId}/${eventId}`)),
  );
  digest[6] = (digest[6] & 0x0f) | 0x80;
  digest[8] = (digest[8] & 0x3f) | 0x80;
  const hex = Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
