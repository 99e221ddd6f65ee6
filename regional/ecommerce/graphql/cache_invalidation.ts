/**
 * @module
 * Keeps `gql:product:{id}` honest: the aggregated product read includes stock, so every
 * `stock.adjusted` event (adjustments, reservations, releases, fulfilment) deletes the product's entry.
 * Deleting is idempotent, so redelivery is harmless. Product changes are handled by the catalog's
 * invalidation, which deletes the same key.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import type { Cache, EventLog, Subscription } from "../../../shared/ports/mod.ts";
import { log } from "../../../shared/observability/mod.ts";
import { gqlProductCacheKey } from "./product_cache.ts";

export function startGraphqlCacheInvalidation(
  options: { readonly eventLog: EventLog; readonly cache: Cache; readonly groupId: string },
): Promise<Subscription> {
  return options.eventLog.subscribe({
    groupId: options.groupId,
    topics: [stockAdjusted.eventType],
    from: "latest",
    handler: async (record) => {
      const parsed = parseEnvelope(record.value);
      if (!parsed.ok) {
        // A malformed event cannot name a product; nothing to invalidate, so do not poison the partition.
        log.warn("skipping malformed stock.adjusted event", { reason: parsed.reason, offset: record.offset });
        return;
      }
      await options.cache.del(gqlProductCacheKey((parsed.envelope.payload as { productId: string }).productId));
    },
  });
}
