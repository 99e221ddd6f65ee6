/**
 * @module
 * The region's invalidation stream for the edge (`GET /api/v1/ecommerce/invalidations`, contract in
 * edge/README.md): one `event: purge` per product change the region learns of, sent after the region's own
 * caches for that product were updated.
 */
export {
  type Invalidations,
  INVALIDATIONS_PATH,
  type InvalidationsDeps,
  startInvalidations,
} from "./start_invalidations.ts";
export { createInvalidationHub, type InvalidationHub, type InvalidationHubOptions } from "./invalidation_hub.ts";
export { flashSaleChannelOf, PRODUCT_CHANGE_TOPICS } from "./product_changes.ts";
