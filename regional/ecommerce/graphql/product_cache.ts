/**
 * @module
 * The short-lived cache of aggregated product reads (seed 003 section 7: `gql:product:{id}`, 30 s TTL).
 * One entry holds what `product(id)` and `productInventory(id)` answer: the product and its stock. The
 * catalog deletes the entry when it consumes `product.updated`; stock changes are picked up when the TTL
 * runs out, which is why the TTL is short. The cache is an optimisation only: when it is slow, down or
 * holds garbage, reads fall through to SQL.
 */
import client from "prom-client";
import { z } from "zod";
import type { Cache } from "../../../shared/ports/cache.ts";
import { log, metrics } from "../../../shared/observability/mod.ts";
import { withTimeout } from "./_timeout.ts";
import type { ProductAggregate } from "./product_loaders.ts";

/** Bounds of the aggregated-read cache. */
export const GQL_PRODUCT_CACHE = Object.freeze({
  /** Seed 003: "Short TTL (30s)". */
  TTL_MS: 30_000,
  /** A cache slower than this is skipped: SQL answers the read instead. */
  CALL_TIMEOUT_MS: 250,
});

/** The cache key of the aggregated read of product `id` (lower-case uuid, as the catalog stores it). */
export function gqlProductCacheKey(id: string): string {
  return `gql:product:${id.toLowerCase()}`;
}

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

/** The cached aggregate of `id`, or undefined on a miss (or when the cache failed or held garbage). */
export async function readCachedProduct(cache: Cache, id: string): Promise<ProductAggregate | undefined> {
  let raw: string | null;
  try {
    raw = await withTimeout(cache.get(gqlProductCacheKey(id)), GQL_PRODUCT_CACHE.CALL_TIMEOUT_MS, "the cache");
  } catch (error) {
    cacheRequests.inc({ result: "error" });
    log.warn("graphql cache read failed; reading through", { productId: id, error: String(error) });
    return undefined;
  }
  if (raw === null) {
    cacheRequests.inc({ result: "miss" });
    return undefined;
  }
  const parsed = entrySchema.safeParse(parseJson(raw));
  if (!parsed.success) {
    cacheRequests.inc({ result: "error" });
    log.warn("graphql cache entry is malformed; reading through", { productId: id });
    return undefined;
  }
  cacheRequests.inc({ result: "hit" });
  return { product: parsed.data.product, inventory: parsed.data.inventory };
}

/** Stores the aggregate for {@linkcode GQL_PRODUCT_CACHE}.TTL_MS; a failure is logged, never thrown. */
export async function writeCachedProduct(cache: Cache, aggregate: ProductAggregate): Promise<void> {
  const entry = { v: 1, product: aggregate.product, inventory: aggregate.inventory };
  try {
    await withTimeout(
      cache.set(gqlProductCacheKey(aggregate.product.id), JSON.stringify(entry), { ttlMs: GQL_PRODUCT_CACHE.TTL_MS }),
      GQL_PRODUCT_CACHE.CALL_TIMEOUT_MS,
      "the cache",
    );
  } catch (error) {
    log.warn("graphql cache write failed", { productId: aggregate.product.id, error: String(error) });
  }
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
