/**
 * @module
 * The catalog context of e-commerce (seed 003): products with SCD2 price history over REST, a read-through
 * product cache invalidated by product.updated events, and reads for orders and GraphQL.
 */
export { catalogMigrations } from "./migrations.ts";
export { type CatalogRoutesDeps, createCatalogRoutes } from "./routes.ts";
export {
  getPricesByIds,
  getProductsByIds,
  listProducts,
  type PriceHistoryRow,
  type ProductFilter,
  type ProductPrice,
  type ProductView,
} from "./product_store.ts";
export {
  gqlProductCacheKey,
  gqlProductVersionKey,
  invalidateCachedAggregate,
  invalidateCachedProduct,
  PRODUCT_CACHE_TTL_MS,
  PRODUCT_VERSION_MARK_TTL_MS,
  type ProductCacheInvalidationOptions,
  productCacheKey,
  productVersionKey,
  startProductCacheInvalidation,
} from "./product_cache.ts";
export { PRODUCT_LIMITS } from "./schemas.ts";
