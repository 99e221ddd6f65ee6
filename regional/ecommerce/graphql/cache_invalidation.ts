/**
 * @module
 * Keeps `gql:product:{id}` honest: the aggregated product read includes stock, so every
 * `stock.adjusted` event (adjustments, reservations, releases, expiries, fulfilment) invalidates the product's
 * entry with the catalog's `invalidateCachedAggregate`: the aggregate's mark `gql:product:{id}:v` rises, then the
 * entry goes, so a GraphQL read that loaded the old stock before the change cannot fill it back after (see
 * `product_cache.ts`). Raising a count and deleting are harmless to repeat, so redelivery needs no bookkeeping.
 * Product changes are handled by the catalog's invalidation, which invalidates the same entry the same way.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import type { Cache, EventLog, IncomingRecord, Subscription } from "../../../shared/ports/mod.ts";
import { log } from "../../../shared/observability/mod.ts";
import { invalidateCachedAggregate } from "../catalog/mod.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";

/**
 * Invalidates `gql:product:{id}` for every stock.adjusted event; where the event log takes batches (Kafka), once
 * per product and one offset commit per batch instead of one of each per event (every reservation announces stock).
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
        const products = new Set(records.flatMap((record) => productIdOf(record) ?? []));
        await Promise.all([...products].map((productId) => invalidateCachedAggregate(cache, productId)));
      },
    });
  }
  return eventLog.subscribe({
    ...group,
    handler: async (record) => {
      const productId = productIdOf(record);
      if (productId !== undefined) await invalidateCachedAggregate(cache, productId);
    },
  });
}

/** The product (lower case) a stock.adjusted record names, or undefined for a malformed one (logged, skipped). */
function productIdOf(record: IncomingRecord): string | undefined {
  const parsed = parseEnvelope(record.value);
  const productId = parsed.ok ? (parsed.envelope.payload as { productId?: unknown })?.productId : undefined;
  if (typeof productId !== "string" || productId === "") {
    // A malformed event cannot name a product; nothing to invalidate, so do not poison the partition.
    const reason = parsed.ok ? "no productId" : parsed.reason;
    log.warn("skipping malformed stock.adjusted event", { reason, offset: record.offset });
    return undefined;
  }
  return productId.toLowerCase();
}
