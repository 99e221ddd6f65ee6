import assert from "node:assert/strict";
import { cacheContract } from "../../ports/contract/cache_contract.ts";
import { createMemoryCache } from "./cache.ts";

cacheContract("memory", () => {
  const cache = createMemoryCache();
  return Promise.resolve({ cache, cleanup: () => cache.close() });
});

/** A clock the test moves by hand. */
function fakeClock(startMs = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let nowMs = startMs;
  return { now: () => nowMs, advance: (ms) => nowMs += ms };
}

Deno.test("[memory] cache expires keys on the injected clock, to the millisecond", async () => {
  const clock = fakeClock();
  const cache = createMemoryCache({ now: clock.now });
  await cache.set("k", "v", { ttlMs: 100 });
  clock.advance(99);
  assert.equal(await cache.ttlMs("k"), 1);
  assert.equal(await cache.get("k"), "v");
  clock.advance(1);
  assert.equal(await cache.get("k"), null);
  assert.equal(await cache.ttlMs("k"), -2);
  assert.equal(await cache.incr("k"), 1, "an expired key counts as missing");
  assert.equal(await cache.ttlMs("k"), -1);
});

Deno.test("[memory] cache evicts expired keys first, then the least recently used", async () => {
  const clock = fakeClock();
  const cache = createMemoryCache({ now: clock.now, maxEntries: 3 });
  await cache.set("old", "1");
  await cache.set("short", "2", { ttlMs: 10 });
  await cache.set("recent", "3");
  clock.advance(10);
  await cache.set("new", "4");
  assert.deepEqual(await Promise.all(["old", "recent", "new"].map((k) => cache.get(k))), ["1", "3", "4"]);

  await cache.get("old"); // "recent" is now the least recently used.
  await cache.set("newest", "5");
  assert.equal(await cache.get("recent"), null);
  assert.deepEqual(await Promise.all(["old", "new", "newest"].map((k) => cache.get(k))), ["1", "4", "5"]);
});

Deno.test("[memory] cache rejects every call once closed", async () => {
  const cache = createMemoryCache();
  await cache.close();
  await assert.rejects(cache.get("k"), /Cache is closed/);
  await assert.rejects(cache.ping(100), /Cache is closed/);
});

Deno.test("[memory] createMemoryCache() refuses a maxEntries below 1", () => {
  assert.throws(() => createMemoryCache({ maxEntries: 0 }), RangeError);
});

Deno.test("[memory] cache evicts least recently used keys to stay within maxBytes", async () => {
  const cache = createMemoryCache({ maxBytes: 30 });
  await cache.set("a", "x".repeat(9)); // 10 units with its key
  await cache.set("b", "x".repeat(9));
  await cache.set("c", "x".repeat(9));
  await cache.get("a"); // "b" is now the least recently used.
  await cache.set("d", "x".repeat(9));
  assert.deepEqual(await Promise.all(["a", "b", "c", "d"].map((k) => cache.get(k))), [
    "x".repeat(9),
    null,
    "x".repeat(9),
    "x".repeat(9),
  ]);
  await cache.set("a", "x".repeat(19)); // Growing a value evicts the others it no longer fits beside.
  assert.deepEqual(await Promise.all(["a", "c", "d"].map(async (k) => (await cache.get(k)) !== null)), [
    true,
    false,
    true,
  ]);
  await cache.del("a", "d");
  await cache.set("e", "x".repeat(29)); // Freed by del: the whole budget is available again.
  assert.equal(await cache.get("e"), "x".repeat(29));
});

Deno.test("[memory] cache refuses a value larger than maxBytes and keeps the old one", async () => {
  const cache = createMemoryCache({ maxBytes: 20 });
  await cache.set("k", "small");
  await assert.rejects(cache.set("k", "x".repeat(20)), /OOM command not allowed: "k" takes 21 bytes/);
  assert.equal(await cache.get("k"), "small");
  assert.throws(() => createMemoryCache({ maxBytes: 0 }), RangeError);
});
