/**
 * @module
 * The embedded cache adapter against a plain `Map`. A sample is 1,000 set+get pairs: one pair takes well
 * under a microsecond, below what a histogram of whole microseconds can resolve.
 */
import { createMemoryCache } from "../../shared/adapters/memory/mod.ts";
import { compare, resultOf, type Scenario } from "../harness.ts";

/** Set+get pairs per sample. */
const PAIRS_PER_SAMPLE = 1_000;
/** Distinct keys touched, so both sides work on a small, hot key set. */
const KEYS = 100;

export const cacheMemory: Scenario = {
  name: "cache_memory",
  description: `${PAIRS_PER_SAMPLE} × (set + get) through createMemoryCache() vs the same on a raw Map`,
  async run() {
    const cache = createMemoryCache({ maxEntries: 10_000 });
    const map = new Map<string, string>();
    const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
    let n = 0;
    try {
      const sides = await compare(
        {
          label: `createMemoryCache ×${PAIRS_PER_SAMPLE}`,
          op: async () => {
            for (let i = 0; i < PAIRS_PER_SAMPLE; i++) {
              const key = keys[n++ % KEYS];
              await cache.set(key, key);
              if ((await cache.get(key)) !== key) throw new Error(`Memory cache lost "${key}"`);
            }
          },
        },
        {
          label: `Map ×${PAIRS_PER_SAMPLE}`,
          // Synchronous by nature: a resolved promise only fits it to the op type.
          op: () => {
            for (let i = 0; i < PAIRS_PER_SAMPLE; i++) {
              const key = keys[n++ % KEYS];
              map.set(key, key);
              if (map.get(key) !== key) throw new Error(`Map lost "${key}"`);
            }
            return Promise.resolve();
          },
        },
        { iterationsPerRound: 2_000, warmupPerRound: 200, concurrency: 1, timeCapMsPerRound: 2_000 },
      );
      return resultOf("cache_memory", sides);
    } finally {
      await cache.close();
    }
  },
};
