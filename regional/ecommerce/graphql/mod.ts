/**
 * @module
 * GraphQL aggregated reads of e-commerce (seed 003): products joined with their stock, batched per request
 * with DataLoader, bounded by size/depth/alias/cost limits, and cached briefly in `gql:product:{id}`. No
 * introspection: the SDL is served at `GET /graphql/schema.graphql`.
 */
export { createGraphqlRoutes, GRAPHQL_PATH, type GraphqlRoutesDeps } from "./routes.ts";
export { graphqlSchema, graphqlSchemaSdl } from "./schema.ts";
export { GQL_PRODUCT_CACHE, gqlProductCacheKey } from "./product_cache.ts";
export { GRAPHQL_LIMITS, GRAPHQL_SCHEMA_PATH } from "./query_guard.ts";
export { GraphqlErrorCode } from "./errors.ts";
export { startGraphqlCacheInvalidation } from "./cache_invalidation.ts";
