/**
 * @module
 * One set + get through the cache port on Redis (createRedisCache) against raw ioredis with the same key
 * prefix. The raw client keeps ioredis's defaults otherwise, so the cost of the port's own settings
 * (command timeout, bounded retries) counts as port overhead.
 */
import { Redis } from "ioredis";
import { createRedisCache } from "../../shared/adapters/redis/mod.ts";
import { realInfra } from "../../shared/testing/real_infra.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { compare, resultOf, type Scenario } from "../harness.ts";
import { hostPortOf } from "./_endpoints.ts";

/** Distinct keys written, all deleted at the end. */
const KEYS = 100;
/** Operations in flight; ioredis pipelines them on its one connection. */
const CONCURRENCY = 4;

export const cacheRedis: Scenario = {
  name: "cache_redis",
  description: `set + get, ${CONCURRENCY} in flight: createRedisCache() vs raw ioredis, same key prefix`,
  async run(ctx) {
    const url = realInfra.redisUrl;
    await ctx.requireTcp(hostPortOf(url, 6379), "Redis");
    const keyPrefix = `${uniqueName("bvbench")}:`;
    const cache = createRedisCache({ url, keyPrefix });
    const raw = new Redis(url, { keyPrefix, connectTimeout: 5_000, lazyConnect: false });
    const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
    let n = 0;
    try {
      const sides = await compare(
        {
          label: "createRedisCache",
          op: async () => {
            const key = keys[n++ % KEYS];
            await cache.set(key, key);
            if ((await cache.get(key)) !== key) throw new Error(`Redis port lost "${key}"`);
          },
        },
        {
          label: "ioredis",
          op: async () => {
            const key = keys[n++ % KEYS];
            await raw.set(key, key);
            if ((await raw.get(key)) !== key) throw new Error(`ioredis lost "${key}"`);
          },
        },
        { iterationsPerRound: 3_000, warmupPerRound: 300, concurrency: CONCURRENCY, timeCapMsPerRound: 3_000 },
      );
      return resultOf("cache_redis", sides);
    } finally {
      await raw.del(...keys).catch(() => {});
      await cache.close();
      raw.disconnect();
    }
  },
};
