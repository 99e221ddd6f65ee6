/**
 * @module
 * Where the invalidation stream learns of product changes, and why each purge is sent only after the
 * region's own caches for that product are right:
 *
 * - `product.updated`: this consumer invalidates the product itself, as the catalog's consumer does
 *   (`invalidateCachedProduct`: raise the version mark `product:{id}:v` to the event's version and delete
 *   `product:{id}`, atomically; raise the aggregate's mark `gql:product:{id}:v` by one, then delete
 *   `gql:product:{id}`), then reports the change. The catalog's consumer does the same (harmless to repeat),
 *   but in another group at its own pace; doing it here, in the same handler, is what lets the purge leave only
 *   after it. Raising the marks, not only deleting, matters for the purge: a reader that read the product before
 *   the change cannot fill the old one back after it, where the edge's refetch prompted by the purge would read it.
 * - `stock.adjusted`: invalidates `gql:product:{id}` the same way (`invalidateCachedAggregate`: the GraphQL
 *   aggregate includes stock, so a reader that read the old stock cannot fill it back), then reports.
 *   Inventory REST reads come from the database, which committed before the event was published.
 * - flash-sale start/end: the flash-sale projection sets or deletes `flash_price:{id}` and only then
 *   publishes the broadcast on the region channel `flash_sales:<region>` (flash_sales/README.md); this
 *   module listens there, so the price authority is already updated when it reports.
 *
 * The Kafka group is unique to the process (`ecommerce-<region>.invalidations.<uuid>`, from `latest`):
 * every process must hear every change for its own streams, and nothing is replayed (edges purge on
 * connect). A malformed record names no product: it is skipped here (the catalog and inventory consumers
 * dead-letter it). A failed cache delete throws, so the event log retries it before the purge goes out.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { productUpdated, stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Cache, EventLog, IncomingRecord, Subscription } from "../../../shared/ports/mod.ts";
import { invalidateCachedAggregate, invalidateCachedProduct } from "../catalog/mod.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";

export interface ProductChangesDeps {
  readonly eventLog: EventLog;
  readonly cache: Cache;
  /** Names the flash-sale channel and the consumer group. */
  readonly region: string;
}

export interface ProductChanges {
  /** Resolves once the Kafka member is assigned its partitions and the flash-sale channel is subscribed. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** The topics whose records are product changes (flash sales arrive on the cache channel instead). */
export const PRODUCT_CHANGE_TOPICS: readonly string[] = [productUpdated.eventType, stockAdjusted.eventType];

/** The flash-sale projection's broadcast channel (flash_sales/README.md, "Region-wide fan-out"). */
export function flashSaleChannelOf(region: string): string {
  return `flash_sales:${region}`;
}

/**
 * Calls `onChange(productId)` for every product change the region learns of from now on, each after the
 * region's caches for that product were updated (see the module doc).
 */
export async function followProductChanges(
  deps: ProductChangesDeps,
  onChange: (productId: string) => void,
): Promise<ProductChanges> {
  const { cache } = deps;
  const unsubscribe = await cache.subscribe(flashSaleChannelOf(deps.region), (message) => {
    const productId = productIdOfBroadcast(message);
    if (productId === undefined) {
      log.warn("invalidations ignored a flash-sale broadcast without a product", { chars: message.length });
      return;
    }
    onChange(productId);
  });
  // A batch (Kafka) invalidates each product once, whatever the number of its records: at the order rate every
  // reservation is a `stock.adjusted`, and one cache call per record was this consumer's main cost (bench
  // `order_create` profile). A stock change costs two round trips (raise the aggregate's mark, then delete), the
  // products of a batch in parallel; a product.updated (an admin's edit, rare) is invalidated at the batch's
  // highest version, which covers its aggregate too.
  const handleBatch = async (records: readonly IncomingRecord[]) => {
    const stocked = new Set<string>();
    const updated = new Map<string, number | undefined>();
    const changed: string[] = [];
    for (const record of records) {
      const change = productChangeOf(record);
      if (change === undefined) continue;
      if (change.kind === "stock") stocked.add(change.productId);
      else updated.set(change.productId, newest(updated.get(change.productId), change.version));
      changed.push(change.productId);
    }
    await Promise.all([
      ...[...stocked].filter((productId) => !updated.has(productId))
        .map((productId) => invalidateCachedAggregate(cache, productId)),
      ...[...updated].map(([productId, version]) => invalidateCachedProduct(cache, productId, version)),
    ]);
    for (const productId of new Set(changed)) onChange(productId);
  };
  let subscription: Subscription;
  try {
    const group = {
      groupId: `ecommerce-${deps.region}.invalidations.${crypto.randomUUID()}`,
      topics: PRODUCT_CHANGE_TOPICS,
      from: "latest" as const,
      batchWindowMs: BACKGROUND_CONSUMER_WINDOW_MS,
    };
    subscription = deps.eventLog.subscribeBatches
      ? await deps.eventLog.subscribeBatches({ ...group, handler: handleBatch })
      : await deps.eventLog.subscribe({ ...group, handler: (record) => handleBatch([record]) });
  } catch (error) {
    await unsubscribe();
    throw error;
  }
  return {
    ready: subscription.ready,
    async close() {
      await subscription.close();
      await unsubscribe().catch((error) => log.warn("invalidations unsubscribe failed", { error: String(error) }));
    },
  };
}

/** A change a record announces: a product edit (with its version, if the event carries one) or a stock change. */
type ProductChange =
  | { readonly kind: "product"; readonly productId: string; readonly version: number | undefined }
  | { readonly kind: "stock"; readonly productId: string };

/** The higher of two versions, either of which may be unknown. */
function newest(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

/** The change a record names; undefined (logged) when none. */
function productChangeOf(record: IncomingRecord): ProductChange | undefined {
  const parsed = parseEnvelope(record.value);
  if (!parsed.ok) {
    log.warn("invalidations skipped a malformed record", { topic: record.topic, reason: parsed.reason });
    return undefined;
  }
  const productId = (parsed.envelope.payload as { productId?: unknown })?.productId;
  if (typeof productId !== "string" || productId === "") {
    log.warn("invalidations skipped a record without a productId", { topic: record.topic });
    return undefined;
  }
  const id = productId.toLowerCase();
  if (parsed.envelope.eventType === productUpdated.eventType) {
    const { version } = parsed.envelope.payload as { version?: number };
    return { kind: "product", productId: id, version };
  }
  if (parsed.envelope.eventType === stockAdjusted.eventType) return { kind: "stock", productId: id };
  return undefined;
}

/** The product of a flash-sale broadcast (`{ seq, eventId, event, data: { productId, … } }`), if any. */
function productIdOfBroadcast(message: string): string | undefined {
  try {
    const value = JSON.parse(message) as { event?: unknown; data?: { productId?: unknown } };
    const productId = value?.data?.productId;
    if (typeof value?.event !== "string" || !value.event.startsWith("flash_sale.")) return undefined;
    return typeof productId === "string" ? productId.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}
