/**
 * @module
 * The product read cache of seed 003 section 7: read-through on `product:{id}` (JSON, 300 s TTL) through the
 * Cache port, invalidated ONLY by consuming `ecommerce.product.product.updated.v1` (no side channel from
 * the write path). A cache that fails is bypassed: reads fall back to SQL rather than failing.
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
import { getProduct, isUuid, productNotFound, type ProductView } from "./product_store.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";

/** How long a cached product lives; it bounds staleness if an invalidation is ever lost. */
export const PRODUCT_CACHE_TTL_MS = 300_000;

/** `product:{id}` (seed 003 section 7). */
export function productCacheKey(id: string): string {
  return `product:${id}`;
}

/** `gql:product:{id}`, the GraphQL aggregate of one product (seed 003 section 7), invalidated with it. */
export function gqlProductCacheKey(id: string): string {
  return `gql:product:${id}`;
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

/** Reads a product through the cache: a hit skips SQL; a miss reads SQL and fills the cache. */
export async function readProductThroughCache(sql: SqlExecutor, cache: Cache, id: string): Promise<ProductView> {
  // A malformed id can name no product: answer 404 without touching the cache or the database.
  if (!isUuid(id)) throw productNotFound(id);
  const key = productCacheKey(id.toLowerCase());
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
  const product = await getProduct(sql, id);
  await cache.set(key, JSON.stringify(product), { ttlMs: PRODUCT_CACHE_TTL_MS }).catch((error) => {
    log.warn("product cache write failed", { key, error: String(error) });
  });
  return product;
}

function parseCached(text: string): ProductView | undefined {
  try {
    const value = JSON.parse(text) as ProductView;
    return typeof value?.id === "string" ? value : undefined;
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
 * Consumes product.updated and deletes `product:{id}` and `gql:product:{id}`. Deleting is idempotent, so a
 * redelivered event needs no bookkeeping. A record that is not a valid product.updated envelope throws,
 * so it ends on the topic's dead-letter topic after the consumer's attempts.
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
      const { productId } = parsed.envelope.payload as { productId: string };
      const id = productId.toLowerCase();
      // A valid event: a Redis failure is waited out (a lost invalidation would serve a stale product).
      await retryLaterOnFailure(
        "Invalidating a cached product",
        () => cache.del(productCacheKey(id), gqlProductCacheKey(id)),
      );
    },
  });
}
