/**
 * @module
 * Gives back the stock of every canceled order, from `ecommerce.order.order.canceled.v1`. The order service
 * releases the reservation right after its cancel commits, but that call is best effort: inventory down or
 * slow, or the process gone between the commit and the call, left the units held — for good when the order
 * had been paid (a CONFIRMED reservation never expires). The canceled event is in the outbox with the
 * cancel, so this consumer makes the release as durable as the cancel itself. Releasing is idempotent (a
 * reservation already released, expired or never made is left alone), so the two paths never double count.
 *
 * Only this region's cancels: the embedded event mirror republishes the other region's under the same topic
 * with `bv-origin-region`, and releasing one of those here would find no reservation and write a tombstone
 * claim for an order id this region never sees again (a row per mirrored cancel, kept for good).
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCanceled } from "../../../shared/contracts/events/ecommerce.ts";
import { log } from "../../../shared/observability/mod.ts";
import {
  type EventLog,
  type IncomingRecord,
  retryLaterOnFailure,
  type Sql,
  type Subscription,
} from "../../../shared/ports/mod.ts";
import { ORIGIN_REGION_HEADER } from "../../../shared/replication/event_mirror.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";
import { releaseReservation } from "./reservations.ts";

export interface ReleaseOnCancelOptions {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  /** This region: a record whose `bv-origin-region` names another one was mirrored in and is skipped. */
  readonly region: string;
  /** The consumer group; keep it stable so a restart resumes where it left off. */
  readonly groupId: string;
  /** Called after a release, so the outbox relay publishes its stock event at once. */
  readonly nudgeOutbox: () => void;
  /** Where a new group starts: "earliest" re-applies every cancel (harmless: idempotent). @default "earliest" */
  readonly from?: "earliest" | "latest";
}

/** Subscribes to order.canceled and releases each order's reservation; `ready` resolves once joined. */
export function startReleaseOnCancel(options: ReleaseOnCancelOptions): Promise<Subscription> {
  const { sql, eventLog, nudgeOutbox, region } = options;
  if (typeof region !== "string" || region.trim() === "") {
    throw new TypeError(`startReleaseOnCancel() requires the region it runs in, got "${region}"`);
  }
  return eventLog.subscribe({
    groupId: options.groupId,
    topics: [orderCanceled.eventType],
    from: options.from ?? "earliest",
    batchWindowMs: BACKGROUND_CONSUMER_WINDOW_MS,
    handler: async (record) => {
      // Another region's order: its own consumer releases it there. Skipped before it is read, as the
      // revenue projection does, so a mirrored poison record is dead-lettered once, in its region.
      const origin = record.headers[ORIGIN_REGION_HEADER];
      if (origin !== undefined && origin !== region) return;
      // A record that is not a canceled event is poison (counted: dead-lettered after the retries); the
      // release's own failure is an outage, waited out.
      const orderId = orderIdOf(record);
      const released = await retryLaterOnFailure(
        "Releasing the stock of a canceled order",
        () => releaseReservation(sql, orderId),
      );
      if (!released) return;
      nudgeOutbox();
      log.info("stock of a canceled order released from its event", { orderId });
    },
  });
}

function orderIdOf(record: IncomingRecord): string {
  const parsed = parseEnvelope(record.value);
  if (!parsed.ok) throw new TypeError(`Not a valid order.canceled event: ${parsed.reason}`);
  if (parsed.envelope.eventType !== orderCanceled.eventType) {
    throw new TypeError(`Expected "${orderCanceled.eventType}" but got "${parsed.envelope.eventType}"`);
  }
  return orderCanceled.payload.parse(parsed.envelope.payload).orderId;
}
