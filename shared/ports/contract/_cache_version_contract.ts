/**
 * @module
 * The versioned part of the cache contract: `setUnlessStale()` and `invalidateVersion()`, the pair that keeps
 * a read-through fill from putting back a value older than the last invalidation (catalog/product_cache.ts).
 */
import assert from "node:assert/strict";
import type { Cache, VersionMark } from "../cache.ts";
import { waitFor } from "./_wait_for.ts";

/** Registers one contract test on a fresh cache. */
export type CacheContractTest = (name: string, body: (cache: Cache) => Promise<void>) => void;

const ENTRY_TTL_MS = 60_000;
const MARK_TTL_MS = 120_000;

/** The mark of `product` at `version`, as a caller would pass it. */
function markOf(version: number, markTtlMs = MARK_TTL_MS): VersionMark {
  return { markKey: "product:v", version, markTtlMs };
}

function fill(cache: Cache, version: number, value = `v${version}`): Promise<boolean> {
  return cache.setUnlessStale("product", value, { ...markOf(version), ttlMs: ENTRY_TTL_MS });
}

/** Asserts a TTL within the last second of `ttlMs`. */
async function assertTtlNear(cache: Cache, key: string, ttlMs: number): Promise<void> {
  const remainingMs = await cache.ttlMs(key);
  assert.ok(remainingMs > ttlMs - 1_000 && remainingMs <= ttlMs, `"${key}" has ${remainingMs} ms left, not ~${ttlMs}`);
}

/** Registers the versioned-fill tests through `test`. */
export function cacheVersionContract(test: CacheContractTest): void {
  test("setUnlessStale() without a mark stores the value with its TTL and records its version", async (cache) => {
    assert.equal(await fill(cache, 3), true);
    assert.equal(await cache.get("product"), "v3");
    assert.equal(await cache.get("product:v"), "3");
    await assertTtlNear(cache, "product", ENTRY_TTL_MS);
    await assertTtlNear(cache, "product:v", MARK_TTL_MS);
  });

  test("setUnlessStale() refuses a fill read before the invalidation that followed it", async (cache) => {
    // The race: a reader read version 1, the change to version 2 was consumed, then the fill arrives.
    await cache.set("product", "v1");
    assert.equal(await cache.invalidateVersion(["product"], markOf(2)), 1);
    assert.equal(await fill(cache, 1), false);
    assert.equal(await cache.get("product"), null, "a refused fill writes nothing");
    assert.equal(await cache.get("product:v"), "2", "and leaves the mark alone");
    assert.equal(await fill(cache, 2), true, "the version the invalidation named fills again");
    assert.equal(await cache.get("product"), "v2");
  });

  test("setUnlessStale() never goes backwards: a fill older than the last one is refused", async (cache) => {
    assert.equal(await fill(cache, 6), true);
    assert.equal(await fill(cache, 5), false);
    assert.equal(await fill(cache, 6, "v6 again"), true, "an equal version refreshes the entry");
    assert.equal(await cache.get("product"), "v6 again");
    // Issued together: on Redis they share one connection, so they run in this order, each atomically.
    const versions = [9, 7, 12, 8, 12, 10, 11];
    const stored = await Promise.all(versions.map((version) => fill(cache, version)));
    assert.deepEqual(stored, [true, false, true, false, true, false, false]);
    assert.equal(await cache.get("product"), "v12");
    assert.equal(await cache.get("product:v"), "12");
  });

  test("invalidateVersion() deletes the keys and raises the mark, never lowering it", async (cache) => {
    await cache.set("product", "v1");
    await cache.set("aggregate", "a1");
    assert.equal(await cache.invalidateVersion(["product", "aggregate", "never-set"], markOf(7)), 2);
    assert.deepEqual([await cache.get("product"), await cache.get("aggregate")], [null, null]);
    assert.equal(await cache.get("product:v"), "7");
    await assertTtlNear(cache, "product:v", MARK_TTL_MS);
    // A redelivered or older change deletes again but keeps the higher mark, with a fresh TTL.
    await fill(cache, 7);
    assert.equal(await cache.invalidateVersion(["product"], markOf(4, 2 * MARK_TTL_MS)), 1);
    assert.equal(await cache.get("product:v"), "7");
    await assertTtlNear(cache, "product:v", 2 * MARK_TTL_MS);
    assert.equal(await cache.invalidateVersion([], markOf(8)), 0, "with no keys it only raises the mark");
    assert.equal(await cache.get("product:v"), "8");
  });

  test("a mark expires after markTtlMs, and then any version fills again", async (cache) => {
    await cache.invalidateVersion(["product"], markOf(5, 150));
    assert.equal(await fill(cache, 4), false);
    await waitFor("the mark to expire", async () => (await cache.get("product:v")) === null, { timeoutMs: 2_000 });
    assert.equal(await fill(cache, 4), true);
    assert.equal(await cache.get("product"), "v4");
  });

  test("setUnlessStale() and invalidateVersion() reject a mark that is not an integer and change nothing", async (cache) => {
    await cache.set("product", "kept");
    await cache.set("product:v", "not a number");
    await assert.rejects(fill(cache, 1, "new"), /not an integer/);
    await assert.rejects(cache.invalidateVersion(["product"], markOf(1)), /not an integer/);
    assert.equal(await cache.get("product"), "kept");
    assert.equal(await cache.get("product:v"), "not a number");
  });

  test("setUnlessStale() and invalidateVersion() reject bad versions, TTLs and a mark among its keys", async (cache) => {
    const bad: Array<[string, () => Promise<unknown>]> = [
      ["negative version", () => fill(cache, -1)],
      ["fractional version", () => fill(cache, 1.5)],
      ["unsafe version", () => fill(cache, 2 ** 53)],
      ["zero ttlMs", () => cache.setUnlessStale("product", "x", { ...markOf(1), ttlMs: 0 })],
      ["zero markTtlMs", () => cache.setUnlessStale("product", "x", { ...markOf(1, 0), ttlMs: 1_000 })],
      ["fill into its mark", () => cache.setUnlessStale("product:v", "x", { ...markOf(1), ttlMs: 1_000 })],
      ["invalidate a negative version", () => cache.invalidateVersion(["product"], markOf(-1))],
      ["invalidate its own mark", () => cache.invalidateVersion(["product", "product:v"], markOf(1))],
    ];
    for (const [what, call] of bad) await assert.rejects(call(), RangeError, what);
    assert.deepEqual([await cache.get("product"), await cache.get("product:v")], [null, null]);
  });
}
