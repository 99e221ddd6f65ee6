/**
 * @module
 * The product read cache of seed 003 section 7: read-through on `product:{id}` (JSON `{ product, version }`, the
 * version being the row's, which the product's ETag names; 300 s TTL) through the Cache port, invalidated ONLY by
 * consuming `ecommerce.product.product.updated.v1` (no side channel from the write path). A cache that fails is
 * bypassed: reads fall back to SQL rather than failing.
 *
 * Fills cannot go backwards. Each product has a version mark, `product:{id}:v`: the highest `products.version`
 * the cache has heard of. A fill stores its row only if the row's version is at least the mark (and raises the
 * mark to it); consuming product.updated raises the mark to the event's version and deletes the entry, in one
 * atomic step (the GraphQL aggregate `gql:product:{id}` has a mark of its own: `invalidateCachedAggregate`). So a
 * reader that read the row before a change and writes after its invalidation is refused: without the mark its write
 * would land after the delete and serve the old product for the whole TTL.
 */
import client from "prom-client";
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { productUpdated } from "../../../shared/contracts/events/ecommerce.ts";
import { log, metrics } from "../../../shared/observability/mod.ts";
import {
  type Cache,
  type EventLog,
  retryLaterOnFailure,
  type SqlExecutor,
  type Subscription,
} from "../../../shared/ports/mod.ts";
import {
  getVersionedProduct,
  isUuid,
  productNotFound,
  type ProductView,
  type VersionedProduct,
} from "./product_store.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";

/** How long a cached product lives; it bounds staleness if an invalidation is ever lost. */
export const PRODUCT_CACHE_TTL_MS = 300_000;

/**
 * How long a product's version mark lives after it was last raised. Every fill raises it, so it outlives the
 * entry it guards; and it is far longer than a fill can take from its SQL read to its cache write (bounded by
 * the request and the adapter's command timeouts), past which a slower fill would no longer be refused.
 */
export const PRODUCT_VERSION_MARK_TTL_MS = 2 * PRODUCT_CACHE_TTL_MS;

/** `product:{id}` (seed 003 section 7). */
export function productCacheKey(id: string): string {
  return `product:${id}`;
}

/** `product:{id}:v`, the product's version mark (see the module doc). */
export function productVersionKey(id: string): string {
  return `product:${id}:v`;
}

/** `gql:product:{id}`, the GraphQL aggregate of one product (seed 003 section 7), invalidated with it. */
export function gqlProductCacheKey(id: string): string {
  return `gql:product:${id}`;
}

/** `gql:product:{id}:v`, the aggregate's own mark: how many times it was invalidated (see below). */
export function gqlProductVersionKey(id: string): string {
  return `gql:product:${id}:v`;
}

const CACHE_METRIC = "bv_product_cache_requests_total";

/** Product cache lookups by result; hit ratio = hit / (hit + miss). */
const cacheRequests = (metrics.registry.getSingleMetric(CACHE_METRIC) as client.Counter<"result"> | undefined) ??
  new client.Counter({
    name: CACHE_METRIC,
    help: "Product cache lookups by result (hit or miss)",
    labelNames: ["result"] as const,
    registers: [metrics.registry],
  });

/**
 * Reads a product through the cache: a hit skips SQL; a miss reads SQL and fills the cache unless the product
 * changed (and the change was consumed) since that read.
 */
export async function readProductThroughCache(sql: SqlExecutor, cache: Cache, id: string): Promise<ProductView> {
  return (await readVersionedProductThroughCache(sql, cache, id)).product;
}

/**
 * {@linkcode readProductThroughCache} with the version the product was read at (its ETag). An entry holds the
 * product together with its version, so a hit names the same version an uncached read of that row does.
 */
export async function readVersionedProductThroughCache(
  sql: SqlExecutor,
  cache: Cache,
  id: string,
): Promise<VersionedProduct> {
  // A malformed id can name no product: answer 404 without touching the cache or the database.
  if (!isUuid(id)) throw productNotFound(id);
  const productId = id.toLowerCase();
  const key = productCacheKey(productId);
  const cached = await cache.get(key).catch((error) => {
    log.warn("product cache read failed; reading the database", { key, error: String(error) });
    return null;
  });
  const hit = cached === null ? undefined : parseCached(cached);
  if (hit) {
    cacheRequests.inc({ result: "hit" });
    return hit;
  }
  cacheRequests.inc({ result: "miss" });
  const read = await getVersionedProduct(sql, productId);
  // The caller gets what it read either way; a refused fill only means the next reader reads SQL again.
  const entry: VersionedProduct = { product: read.product, version: read.version };
  await cache.setUnlessStale(key, JSON.stringify(entry), {
    ttlMs: PRODUCT_CACHE_TTL_MS,
    markKey: productVersionKey(productId),
    version: read.version,
    markTtlMs: PRODUCT_VERSION_MARK_TTL_MS,
  }).catch((error) => {
    log.warn("product cache write failed", { key, error: String(error) });
  });
  return read;
}

/**
 * Drops product `id` (lower case) from the caches as of `version`, the product.updated event's: raises its mark
 * and deletes `product:{id}` atomically, and invalidates `gql:product:{id}` ({@linkcode invalidateCachedAggregate});
 * resolves with how many entries existed. An event written before it carried a version can only delete
 * `product:{id}`: a fill racing it may land old, until the TTL.
 */
export async function invalidateCachedProduct(
  cache: Cache,
  id: string,
  version: number | undefined,
): Promise<number> {
  const key = productCacheKey(id);
  const [product, aggregate] = await Promise.all([
    version === undefined ? cache.del(key) : cache.invalidateVersion([key], {
      markKey: productVersionKey(id),
      version,
      markTtlMs: PRODUCT_VERSION_MARK_TTL_MS,
    }),
    invalidateCachedAggregate(cache, id),
  ]);
  return product + aggregate;
}

/**
 * Drops `gql:product:{id}` (`id` lower case) so that no GraphQL fill that read before can put it back; resolves with
 * whether it existed (0 or 1). The aggregate also holds stock, whose changes (stock.adjusted) carry no version, so
 * its mark `gql:product:{id}:v` counts invalidations of either kind instead of holding a row version: this raises it
 * by one, then deletes the entry. A GraphQL fill stores only at the count it read before its SQL reads
 * (graphql/product_cache.ts), so one that read before this call is refused after it.
 */
export async function invalidateCachedAggregate(cache: Cache, id: string): Promise<number> {
  const markKey = gqlProductVersionKey(id);
  // Raised before the delete: a fill landing between the two is refused, one landing before is deleted. The
  // second step also gives the mark its TTL, which INCR does not give a key it creates.
  const count = await cache.incr(markKey);
  return await cache.invalidateVersion([gqlProductCacheKey(id)], {
    markKey,
    version: count,
    markTtlMs: PRODUCT_VERSION_MARK_TTL_MS,
  });
}

/** An entry `{ product, version }`; anything else is a miss, which the fill then overwrites. */
function parseCached(text: string): VersionedProduct | undefined {
  try {
    const value = JSON.parse(text) as VersionedProduct;
    // An entry written before entries carried their version (a bare product) cannot give an ETag: a miss.
    return Number.isSafeInteger(value?.version) && typeof value.product?.id === "string" ? value : undefined;
  } catch {
    // A corrupt entry is a miss; the read below overwrites it.
    return undefined;
  }
}

export interface ProductCacheInvalidationOptions {
  readonly eventLog: EventLog;
  readonly cache: Cache;
  readonly groupId: string;
  /**
   * Where a new group starts. "earliest" so a product changed while no member ran is still invalidated.
   * @default "earliest"
   */
  readonly from?: "earliest" | "latest";
}

/**
 * Consumes product.updated and invalidates the product ({@linkcode invalidateCachedProduct}). Raising a mark
 * to a maximum and deleting are idempotent, so a redelivered event needs no bookkeeping. A record that is not a
 * valid product.updated envelope throws, so it ends on the topic's dead-letter topic after the consumer's attempts.
 */
export async function startProductCacheInvalidation(options: ProductCacheInvalidationOptions): Promise<Subscription> {
  const { cache } = options;
  return await options.eventLog.subscribe({
    groupId: options.groupId,
    topics: [productUpdated.eventType],
    batchWindowMs: BACKGROUND_CONSUMER_WINDOW_MS,
    from: options.from ?? "earliest",
    handler: async (record) => {
      const parsed = parseEnvelope(record.value);
      if (!parsed.ok) throw new TypeError(`Cannot invalidate the product cache: ${parsed.reason}`);
      if (parsed.envelope.eventType !== productUpdated.eventType) {
        throw new TypeError(`Cannot invalidate the product cache from event type "${parsed.envelope.eventType}"`);
      }
      const { productId, version } = parsed.envelope.payload as { productId: string; version?: number };
      // A valid event: a Redis failure is waited out (a lost invalidation would serve a stale product).
      await retryLaterOnFailure(
        "Invalidating a cached product",
        () => invalidateCachedProduct(cache, productId.toLowerCase(), version),
      );
    },
  });
}
