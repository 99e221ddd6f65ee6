/**
 * @module
 * Which records the revenue projection reads and how they become {@linkcode RevenueEvent}s. Shared by the
 * live projection and the replay, so both skip and reject exactly the same records.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderCanceled, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import { parseMoney } from "../../../shared/contracts/money.ts";
import type { IncomingRecord } from "../../../shared/ports/mod.ts";
import { ORIGIN_REGION_HEADER } from "../../../shared/replication/event_mirror.ts";
import type { RevenueEvent } from "./revenue_rules.ts";

/** The topics the projection consumes; tests point it at topics of their own. */
export interface RevenueTopics {
  readonly paid: string;
  readonly canceled: string;
}

/** The order topics of seed 003 section 6. */
export const REVENUE_TOPICS: RevenueTopics = Object.freeze({
  paid: orderPaid.eventType,
  canceled: orderCanceled.eventType,
});

/** Whose orders a region's revenue counts (decided at start by `revenueSourcesOf`). */
export interface RevenueScope {
  readonly region: string;
  /**
   * True when the region's orders tables are replicated (they hold every region's orders): every order
   * event counts, whatever its origin. False (standalone): only the region's own orders count.
   */
  readonly everyOrigin: boolean;
}

/**
 * The event in `record`, or null when it belongs to an order outside `scope`: standalone, a record mirrored
 * in from elsewhere carries `bv-origin-region`, and a region's revenue counts only its own orders (the ones
 * its orders tables — and so its daily batch — hold). Throws a TypeError for a record that is not a valid
 * paid or canceled event, so the live consumer dead-letters it after its bounded retries.
 */
export function decodeRevenueRecord(record: IncomingRecord, scope: RevenueScope): RevenueEvent | null {
  const origin = record.headers[ORIGIN_REGION_HEADER];
  if (!scope.everyOrigin && origin !== undefined && origin !== scope.region) return null;
  const parsed = parseEnvelope(record.value);
  if (!parsed.ok) throw new TypeError(`Not a valid order event: ${parsed.reason}`);
  const { envelope } = parsed;
  const at = new Date(envelope.occurredAt);
  if (envelope.eventType === orderPaid.eventType) {
    const payload = orderPaid.payload.parse(envelope.payload);
    const amountUnits = parseMoney(payload.amount);
    if (amountUnits < 0n) {
      throw new TypeError(`Order "${payload.orderId}" was paid a negative amount "${payload.amount}"`);
    }
    return {
      kind: "paid",
      eventId: envelope.eventId,
      orderId: payload.orderId,
      amountUnits,
      currency: payload.currency,
      at,
    };
  }
  if (envelope.eventType === orderCanceled.eventType) {
    const payload = orderCanceled.payload.parse(envelope.payload);
    return { kind: "canceled", eventId: envelope.eventId, orderId: payload.orderId, at };
  }
  throw new TypeError(
    `Expected "${orderPaid.eventType}" or "${orderCanceled.eventType}" but got "${envelope.eventType}"`,
  );
}
