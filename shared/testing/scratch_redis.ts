/**
 * @module
 * A real Redis cache for one test, under a key prefix of its own; every key written through it (marks included)
 * is deleted afterwards, since the server is shared with other runs.
 */
import { createRedisCache } from "../adapters/redis/mod.ts";
import type { Cache } from "../ports/cache.ts";
import { realInfra } from "./real_infra.ts";
import { uniqueName } from "./unique.ts";

/** Runs `body` with the cache, then deletes what it wrote and closes it. */
export async function withScratchRedis(body: (cache: Cache) => Promise<void>): Promise<void> {
  const redis = createRedisCache({ url: realInfra.redisUrl, keyPrefix: `${uniqueName("bvtest")}:` });
  const written = new Set<string>();
  const cache: Cache = {
    ...redis,
    set(key, value, options) {
      written.add(key);
      return redis.set(key, value, options);
    },
    setUnlessStale(key, value, options) {
      written.add(key).add(options.markKey);
      return redis.setUnlessStale(key, value, options);
    },
    invalidateVersion(keys, mark) {
      written.add(mark.markKey);
      return redis.invalidateVersion(keys, mark);
    },
  };
  try {
    await body(cache);
  } finally {
    if (written.size > 0) await redis.del(...written);
    await redis.close();
  }
}
