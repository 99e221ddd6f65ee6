import assert from "node:assert/strict";
import {
  type CachedResponse,
  createHotCache,
  entryBytesOf,
  etagOf,
  freshnessOf,
  ifNoneMatchHits,
  readBounded,
} from "./hot_cache.ts";

const LIMITS = { ttlMs: 10_000, staleWhileRevalidateMs: 30_000 };

function entryOf(key: string, bodyBytes: number): CachedResponse {
  const body = new Uint8Array(bodyBytes);
  return {
    key,
    region: "east",
    path: `/api/v1/products/${key}`,
    productId: key,
    status: 200,
    headers: [],
    body,
    etag: '"x"',
    storedAtMs: 0,
    freshUntilMs: 1,
    staleUntilMs: 2,
    bytes: entryBytesOf(key, [], body),
    refreshing: false,
  };
}

Deno.test("hot cache evicts least recently used entries to stay under its byte bound", () => {
  const one = entryOf("a", 1000).bytes;
  const cache = createHotCache({ ...LIMITS, entriesMax: 100, bytesMax: one * 2 + 10, entryBytesMax: one * 2 });
  assert.ok(cache.store(entryOf("a", 1000), cache.generation()));
  assert.ok(cache.store(entryOf("b", 1000), cache.generation()));
  cache.lookup("a");
  assert.ok(cache.store(entryOf("c", 1000), cache.generation()));
  assert.deepEqual(cache.stats(), { entries: 2, bytes: one * 2 });
  assert.equal(cache.lookup("b"), undefined);
  assert.ok(cache.lookup("a"));
  // One entry over the per-entry bound is refused instead of flushing everything else.
  assert.equal(cache.store(entryOf("big", one * 3), cache.generation()), false);
  assert.equal(cache.stats().entries, 2);
});

Deno.test("hot cache refuses to store what a purge since the fill began would have removed, and only that", () => {
  const cache = createHotCache({ ...LIMITS, entriesMax: 10, bytesMax: 1 << 20 });
  const before = cache.generation();
  cache.purge(["a"]);
  cache.purge((entry) => entry.productId === "b");
  assert.equal(cache.store(entryOf("a", 10), before), false, "purged by key since the fill began");
  assert.equal(cache.store(entryOf("b", 10), before), false, "purged by predicate since the fill began");
  assert.equal(cache.store(entryOf("c", 10), before), true, "other keys' purges do not matter");
  assert.equal(cache.store(entryOf("a", 10), cache.generation()), true, "a fill begun after the purge");
});

Deno.test("hot cache refuses a fill older than the purges it remembers", () => {
  const cache = createHotCache({ ...LIMITS, entriesMax: 10, bytesMax: 1 << 20 });
  const before = cache.generation();
  for (let i = 0; i < 1_001; i++) cache.purge([`other-${i}`]);
  assert.equal(cache.store(entryOf("c", 10), before), false);
  const recent = cache.generation();
  cache.purge(["other"]);
  assert.equal(cache.store(entryOf("c", 10), recent), true);
});

Deno.test("freshnessOf follows shared-cache rules and caps lifetimes at the edge's own", () => {
  const of = (headers: Record<string, string>, auth = false) => freshnessOf(new Headers(headers), auth, LIMITS);
  assert.deepEqual(of({}), { freshMs: 10_000, staleMs: 30_000 });
  assert.deepEqual(of({ "cache-control": "public, max-age=3600" }), { freshMs: 10_000, staleMs: 30_000 });
  assert.deepEqual(of({ "cache-control": "max-age=2, stale-while-revalidate=5" }), { freshMs: 2_000, staleMs: 5_000 });
  assert.deepEqual(of({ "cache-control": "max-age=60, s-maxage=3" }), { freshMs: 3_000, staleMs: 30_000 });
  for (const cc of ["no-store", "private", "no-cache", "max-age=0", "Private, max-age=60"]) {
    assert.equal(of({ "cache-control": cc }), undefined, cc);
  }
  assert.equal(of({ "set-cookie": "a=1" }), undefined);
  assert.equal(of({ vary: "authorization" }), undefined);
  assert.equal(of({ "content-encoding": "gzip" }), undefined);
  assert.equal(of({}, true), undefined);
  assert.ok(of({ "cache-control": "public" }, true));
  assert.ok(of({ "cache-control": "s-maxage=5" }, true));
});

Deno.test("ifNoneMatchHits compares weakly and accepts lists and *", () => {
  assert.equal(ifNoneMatchHits(null, '"a"'), false);
  assert.equal(ifNoneMatchHits('"a"', '"a"'), true);
  assert.equal(ifNoneMatchHits('W/"a"', '"a"'), true);
  assert.equal(ifNoneMatchHits('"b", "a"', '"a"'), true);
  assert.equal(ifNoneMatchHits("*", '"a"'), true);
  assert.equal(ifNoneMatchHits('"b"', '"a"'), false);
});

Deno.test("etagOf depends only on the body bytes", async () => {
  const a = await etagOf(new TextEncoder().encode('{"id":"p1"}'));
  assert.equal(a, await etagOf(new TextEncoder().encode('{"id":"p1"}')));
  assert.notEqual(a, await etagOf(new TextEncoder().encode('{"id":"p2"}')));
});

Deno.test("readBounded hands back a body over the bound as a stream with nothing lost", async () => {
  const chunks = ["ab", "cd", "ef"].map((s) => new TextEncoder().encode(s));
  const streamOf = () => ReadableStream.from(chunks);
  const small = await readBounded(streamOf(), 6);
  assert.ok("bytes" in small);
  assert.equal(new TextDecoder().decode(small.bytes), "abcdef");
  const big = await readBounded(streamOf(), 3);
  assert.ok("stream" in big);
  assert.equal(await new Response(big.stream).text(), "abcdef");
});
