/**
 * @module
 * The read caches of a replica region are bypassed. The product caches (`product:{id}`, `gql:product:{id}`)
 * are invalidated only by consuming the catalog's events, and those are published by the region that writes
 * the catalog, into its own Kafka; the replica would keep serving a product as it was cached until the TTL
 * (300 s). While this region is a replica its reads therefore go to its database, which replication keeps
 * within milliseconds of the writer; after a promotion the cache is used again.
 */
import type { Cache } from "../../../../shared/ports/mod.ts";

/**
 * `cache` for readers: `get` misses and `set` and `setUnlessStale` are skipped while `isReplica()`; everything
 * else passes through.
 */
export function bypassedWhileReplica(cache: Cache, isReplica: () => Promise<boolean>): Cache {
  return {
    get: async (key) => (await isReplica()) ? null : await cache.get(key),
    set: async (key, value, options) => {
      if (!(await isReplica())) await cache.set(key, value, options);
    },
    del: (...keys) => cache.del(...keys),
    incr: (key, by) => cache.incr(key, by),
    ttlMs: (key) => cache.ttlMs(key),
    // A fill like `set`: skipped (reported as not stored) while a replica. Invalidations pass through like `del`.
    setUnlessStale: async (key, value, options) =>
      !(await isReplica()) && await cache.setUnlessStale(key, value, options),
    invalidateVersion: (keys, mark) => cache.invalidateVersion(keys, mark),
    publish: (channel, message) => cache.publish(channel, message),
    subscribe: (channel, onMessage) => cache.subscribe(channel, onMessage),
    ping: (timeoutMs) => cache.ping(timeoutMs),
    close: () => cache.close(),
  };
}
