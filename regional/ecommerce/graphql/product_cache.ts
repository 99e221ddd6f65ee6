/**
 * @module
 * The short-lived cache of aggregated product reads (seed 003 section 7: `gql:product:{id}`, 30 s TTL).
 * One entry holds what `product(id)` and `productInventory(id)` answer: the product and its stock. It is
 * invalidated when a product changes (the catalog's consumer and the invalidation stream, on `product.updated`)
 * and when its stock changes (ours, `cache_invalidation.ts`, and the invalidation stream, on `stock.adjusted`,
 * which every reservation, release, expiry, fulfilment and adjustment announces). The TTL bounds staleness
 * only if an invalidation is lost. The cache is an optimisation only: when it is slow, down or holds garbage,
 * reads fall through to SQL.
 *
 * Fills cannot go backwards past either kind of change: they are guarded by the aggregate's own mark
 * `gql:product:{id}:v`, which every invalidation of the entry raises by one before it deletes the entry
 * (the catalog's `invalidateCachedAggregate`). A miss reads the mark BEFORE its SQL reads, and the fill stores
 * only if the mark has not risen since (`setUnlessStale` with that count): a reader that stalled between its
 * SQL read and its write, while the product or its stock changed and the change was consumed, is refused
 * instead of serving the old product or the old stock for the TTL. (Stock changes carry no version, so the mark
 * counts invalidations rather than holding a row version; the count as it stood before the read orders the fill.)
 */
import client from "prom-client";
import { z } from "zod";
import type { Cache } from "../../../shared/ports/cache.ts";
import { log, metrics } from "../../../shared/observability/mod.ts";
import {
  gqlProductCacheKey as catalogGqlProductCacheKey,
  gqlProductVersionKey,
  PRODUCT_VERSION_MARK_TTL_MS,
} from "../catalog/mod.ts";
import { withTimeout } from "./_timeout.ts";
import type { ProductAggregate } from "./product_loaders.ts";

/** Bounds of the aggregated-read cache. */
export const GQL_PRODUCT_CACHE = Object.freeze({
  /** Seed 003: "Short TTL (30s)". */
  TTL_MS: 30_000,
  /** A cache slower than this is skipped: SQL answers the read instead. */
  CALL_TIMEOUT_MS: 250,
});

/** The cache key of the aggregated read of product `id`: the catalog's key (the one it invalidates), lower case. */
export function gqlProductCacheKey(id: string): string {
  return catalogGqlProductCacheKey(id.toLowerCase());
}

/**
 * What a miss hands to the fill after its SQL reads: the aggregate's mark as it stood before them (0 when there was
 * none). Only reads that started after {@linkcode lookUpCachedProduct} resolved may fill with it.
 */
export interface FillGuard {
  readonly productId: string;
  readonly markVersion: number;
}

/** A lookup: the cached aggregate, or a miss with the guard its fill needs (none when the mark could not be read). */
export type CacheLookup =
  | { readonly hit: ProductAggregate }
  | { readonly hit?: undefined; readonly fill: FillGuard | undefined };

const cacheRequests = new client.Counter({
  name: "bv_graphql_cache_requests_total",
  help: "Aggregated product reads of the GraphQL API by cache result (hit, miss, error)",
  labelNames: ["result"] as const,
  registers: [metrics.registry],
});

const inventorySchema = z.object({
  productId: z.string(),
  sku: z.string(),
  onHand: z.number().int(),
  reserved: z.number().int(),
  available: z.number().int(),
});

/** The entry as stored; `v` lets a later shape be told apart from this one during a rolling deploy. */
const entrySchema = z.object({
  v: z.literal(1),
  product: z.object({
    id: z.string(),
    sku: z.string(),
    name: z.string(),
    description: z.string(),
    category: z.string(),
    price: z.string(),
    currency: z.string(),
  }),
  inventory: inventorySchema,
});

/** Looks `id` up in the cache; a miss (or a failed, garbage entry) comes with the guard of its fill. */
export async function lookUpCachedProduct(cache: Cache, id: string): Promise<CacheLookup> {
  const productId = id.toLowerCase();
  let raw: string | null;
  try {
    raw = await withTimeout(cache.get(gqlProductCacheKey(productId)), GQL_PRODUCT_CACHE.CALL_TIMEOUT_MS, "the cache");
  } catch (error) {
    cacheRequests.inc({ result: "error" });
    log.warn("graphql cache read failed; reading through", { productId, error: String(error) });
    // A cache that just failed is not written to either: no guard, no fill.
    return { fill: undefined };
  }
  if (raw === null) {
    cacheRequests.inc({ result: "miss" });
    return { fill: await fillGuardOf(cache, productId) };
  }
  const parsed = entrySchema.safeParse(parseJson(raw));
  if (!parsed.success) {
    cacheRequests.inc({ result: "error" });
    log.warn("graphql cache entry is malformed; reading through", { productId });
    return { fill: await fillGuardOf(cache, productId) };
  }
  cacheRequests.inc({ result: "hit" });
  return { hit: { product: parsed.data.product, inventory: parsed.data.inventory } };
}

/** The aggregate's mark now (0 when it has none), or undefined when it cannot be read: then no fill. */
async function fillGuardOf(cache: Cache, productId: string): Promise<FillGuard | undefined> {
  try {
    const mark = await withTimeout(
      cache.get(gqlProductVersionKey(productId)),
      GQL_PRODUCT_CACHE.CALL_TIMEOUT_MS,
      "the cache",
    );
    const markVersion = mark === null ? 0 : Number(mark);
    if (Number.isSafeInteger(markVersion) && markVersion >= 0) return { productId, markVersion };
    log.warn("graphql cache skips the fill: the aggregate's mark is not a count", { productId });
  } catch (error) {
    log.warn("graphql cache skips the fill: the version mark could not be read", { productId, error: String(error) });
  }
  return undefined;
}

/**
 * Stores the aggregate for {@linkcode GQL_PRODUCT_CACHE}.TTL_MS unless the product or its stock changed (and the
 * change was consumed) since `guard` was taken; resolves whether it stored. A failure is logged, never thrown.
 */
export async function writeCachedProduct(
  cache: Cache,
  aggregate: ProductAggregate,
  guard: FillGuard,
): Promise<boolean> {
  const productId = aggregate.product.id.toLowerCase();
  if (productId !== guard.productId) {
    throw new RangeError(`The fill guard is for product "${guard.productId}", not "${productId}"`);
  }
  const entry = { v: 1, product: aggregate.product, inventory: aggregate.inventory };
  try {
    // Atomic on the cache's side: a write that the timeout gave up on but that lands later is still checked.
    return await withTimeout(
      cache.setUnlessStale(gqlProductCacheKey(productId), JSON.stringify(entry), {
        ttlMs: GQL_PRODUCT_CACHE.TTL_MS,
        markKey: gqlProductVersionKey(productId),
        version: guard.markVersion,
        markTtlMs: PRODUCT_VERSION_MARK_TTL_MS,
      }),
      GQL_PRODUCT_CACHE.CALL_TIMEOUT_MS,
      "the cache",
    );
  } catch (error) {
    log.warn("graphql cache write failed", { productId, error: String(error) });
    return false;
  }
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
