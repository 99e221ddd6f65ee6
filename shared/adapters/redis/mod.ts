/**
 * @module
 * Redis adapters. Only this folder imports ioredis.
 */
export { createRedisCache, type RedisCacheOptions } from "./cache.ts";
