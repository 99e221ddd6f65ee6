/**
 * @module
 * The `inventory:{productId}` cache (seed 003 section 7, "event-driven set"): a JSON snapshot of a
 * product's stock, set only from `ecommerce.inventory.stock.adjusted.v1` events, never by a request
 * handler. Setting a key is naturally idempotent, and a product's events share a partition (key =
 * productId), so a redelivery replays them in order and the last one wins again.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import type { Cache, EventLog, Subscription } from "../../../shared/ports/mod.ts";
import type { StockView } from "./stock.ts";

/** The cache key of a product's stock snapshot. */
export function inventoryCacheKey(productId: string): string {
  return `inventory:${productId}`;
}

/** What `inventory:{productId}` holds: the stock view plus the event it came from. */
export interface InventorySnapshot extends StockView {
  readonly eventId: string;
  readonly occurredAt: string;
}

export interface InventoryCacheProjectionOptions {
  readonly eventLog: EventLog;
  readonly cache: Cache;
  /** The consumer group; keep it stable so a restart resumes where it left off. */
  readonly groupId: string;
  /** Where a new group starts: "earliest" rebuilds every snapshot from the topic. @default "earliest" */
  readonly from?: "earliest" | "latest";
}

/** Subscribes to stock.adjusted and keeps `inventory:{productId}` current; `ready` resolves once joined. */
export function startInventoryCacheProjection(options: InventoryCacheProjectionOptions): Promise<Subscription> {
  const { cache } = options;
  return options.eventLog.subscribe({
    groupId: options.groupId,
    topics: [stockAdjusted.eventType],
    from: options.from ?? "earliest",
    handler: async (record) => {
      const parsed = parseEnvelope(record.value);
      // A record that is not a valid stock.adjusted event is poison: throwing sends it to the DLQ after
      // the event log's bounded retries instead of silently skipping it.
      if (!parsed.ok) throw new TypeError(`Not a valid stock.adjusted event: ${parsed.reason}`);
      if (parsed.envelope.eventType !== stockAdjusted.eventType) {
        throw new TypeError(`Expected "${stockAdjusted.eventType}" but got "${parsed.envelope.eventType}"`);
      }
      const payload = stockAdjusted.payload.parse(parsed.envelope.payload);
      const snapshot: InventorySnapshot = {
        productId: payload.productId,
        sku: payload.sku,
        onHand: payload.onHand,
        reserved: payload.reserved,
        available: payload.onHand - payload.reserved,
        eventId: parsed.envelope.eventId,
        occurredAt: parsed.envelope.occurredAt,
      };
      await cache.set(inventoryCacheKey(payload.productId), JSON.stringify(snapshot));
    },
  });
}
