import assert from "node:assert/strict";
import { createMemoryCache } from "../../../../shared/adapters/memory/mod.ts";
import { bypassedWhileReplica } from "./replica_read_cache.ts";

Deno.test("a replica region's readers miss the cache and do not fill it; after promotion they use it again", async () => {
  const cache = createMemoryCache();
  let replica = true;
  const readers = bypassedWhileReplica(cache, () => Promise.resolve(replica));
  await cache.set("product:p-1", "stale");
  assert.equal(await readers.get("product:p-1"), null);
  await readers.set("product:p-2", "fresh");
  assert.equal(await cache.get("product:p-2"), null);
  const fill = { ttlMs: 1_000, markKey: "product:p-3:v", version: 1, markTtlMs: 2_000 };
  assert.equal(await readers.setUnlessStale("product:p-3", "fresh", fill), false);
  assert.equal(await cache.get("product:p-3"), null);
  assert.equal(await readers.del("product:p-1"), 1);
  replica = false;
  await readers.set("product:p-2", "fresh");
  assert.equal(await readers.get("product:p-2"), "fresh");
  assert.equal(await readers.setUnlessStale("product:p-3", "fresh", fill), true);
  assert.equal(await readers.get("product:p-3"), "fresh");
});
