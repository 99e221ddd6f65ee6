/**
 * @module
 * Keeps `gql:product:{id}` honest: the aggregated product read includes stock, so every
 * `stock.adjusted` event (adjustments, reservations, releases, fulfilment) deletes the product's entry.
 * Deleting is idempotent, so redelivery is harmless. Product changes are handled by the catalog's
 * invalidation, which deletes the same key.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import type { Cache, EventLog, IncomingRecord, Subscription } from "../../../shared/ports/mod.ts";
import { log } from "../../../shared/observability/mod.ts";
import { gqlProductCacheKey } from "./product_cache.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";

/**
 * Deletes `gql:product:{id}` for every stock.adjusted event; where the event log takes batches (Kafka), one
 * DEL and one offset commit per batch instead of one of each per event (every reservation announces stock).
 */
export function startGraphqlCacheInvalidation(
  options: { readonly eventLog: EventLog; readonly cache: Cache; readonly groupId: string },
): Promise<Subscription> {
  const { eventLog, cache } = options;
  const group = {
    groupId: options.groupId,
    topics: [stockAdjusted.eventType],
    from: "latest" as const,
    batchWindowMs: BACKGROUND_CONSUMER_WINDOW_MS,
  };
  if (eventLog.subscribeBatches) {
    return eventLog.subscribeBatches({
      ...group,
      handler: async (records) => {
        const keys = new Set(records.flatMap((record) => keyOf(record) ?? []));
        if (keys.size > 0) await cache.del(...keys);
      },
    });
  }
  return eventLog.subscribe({
    ...group,
    handler: async (record) => {
      const key = keyOf(record);
      if (key !== undefined) await cache.del(key);
    },
  });
}

/** The key a stock.adjusted record invalidates, or undefined for a malformed one (logged, skipped). */
function keyOf(record: IncomingRecord): string | undefined {
  const parsed = parseEnvelope(record.value);
  if (!parsed.ok) {
    // A malformed event cannot name a product; nothing to invalidate, so do not poison the partition.
    log.warn("skipping malformed stock.adjusted event", { reason: parsed.reason, offset: record.offset });
    return undefined;
  }
  return gqlProductCacheKey((parsed.envelope.payload as { productId: string }).productId);
}
