import assert from "node:assert/strict";
import { TEST_AUDIENCE, TEST_ISSUER } from "../shared/testing/test_tokens.ts";
import { eventually, type FakeRegion, fakeRegion } from "./testing/fake_region.ts";
import { createEdgeTestKey } from "./testing/test_keys.ts";
import { createEdge, type Edge, type EdgeOptions } from "./worker.ts";

const TTL_MS = 10_000;
const SWR_MS = 30_000;

function setup(extra?: Partial<EdgeOptions>) {
  const region = fakeRegion("east");
  region.state.versions.set("p1", 1);
  region.state.versions.set("p2", 1);
  const clock = { ms: Date.now() };
  const edge = createEdge({
    regions: [region],
    cache: { ttlMs: TTL_MS, staleWhileRevalidateMs: SWR_MS, entriesMax: 100, bytesMax: 1024 * 1024 },
    now: () => clock.ms,
    ...extra,
  });
  return { region, edge, clock };
}

async function read(edge: Edge, path: string, init?: RequestInit) {
  const response = await edge.app.request(path, init);
  const text = await response.text();
  return {
    status: response.status,
    cache: response.headers.get("x-bv-cache"),
    etag: response.headers.get("etag"),
    body: text === "" ? undefined : JSON.parse(text),
    headers: response.headers,
  };
}

async function teardown(edge: Edge, ...regions: FakeRegion[]) {
  await edge.stop();
  await Promise.all(regions.map((r) => r.close()));
}

Deno.test("edge serves a repeated product read from its cache without asking the region", async () => {
  const { region, edge } = setup();
  try {
    const first = await read(edge, "/api/v1/products/p1");
    assert.equal(first.status, 200);
    assert.equal(first.cache, "MISS");
    assert.match(first.etag ?? "", /^"[A-Za-z0-9_-]{22}"$/);
    const second = await read(edge, "/api/v1/products/p1");
    assert.equal(second.cache, "HIT");
    assert.deepEqual(second.body, first.body);
    assert.equal(second.etag, first.etag);
    assert.equal(second.headers.get("content-type"), "application/json");
    assert.equal(second.headers.get("x-bv-region"), "east");
    assert.equal(region.state.hits, 1);
    // Another query string is another entry.
    assert.equal((await read(edge, "/api/v1/products?limit=5")).cache, "MISS");
    assert.equal((await read(edge, "/api/v1/products?limit=5")).cache, "HIT");
    assert.equal(region.state.hits, 2);
  } finally {
    await teardown(edge, region);
  }
});

Deno.test("edge answers 304 when the client's If-None-Match matches the cached ETag", async () => {
  const { region, edge } = setup();
  try {
    const first = await read(edge, "/api/v1/products/p1");
    const revalidated = await read(edge, "/api/v1/products/p1", { headers: { "if-none-match": first.etag! } });
    assert.equal(revalidated.status, 304);
    assert.equal(revalidated.body, undefined);
    assert.equal(revalidated.etag, first.etag);
    assert.equal(region.state.hits, 1);
    const weak = await read(edge, "/api/v1/products/p1", { headers: { "if-none-match": `"other", W/${first.etag}` } });
    assert.equal(weak.status, 304);
    const changed = await read(edge, "/api/v1/products/p1", { headers: { "if-none-match": '"other"' } });
    assert.equal(changed.status, 200);
    assert.equal(changed.body.version, 1);
    // A miss revalidates too: the region's answer is hashed and compared before it is sent.
    edge.purge(() => true);
    const missed = await read(edge, "/api/v1/products/p1", { headers: { "if-none-match": first.etag! } });
    assert.equal(missed.status, 304);
    assert.equal(missed.cache, "MISS");
    // The client's validator was not forwarded: the region answered with a body the edge could store.
    assert.equal(region.state.lastHeaders?.get("if-none-match"), null);
  } finally {
    await teardown(edge, region);
  }
});

Deno.test("edge keeps the region's ETag (a product's version) on cached answers and revalidates with it", async () => {
  const { region, edge, clock } = setup();
  try {
    region.state.answerHeaders = { etag: '"v1"' };
    const first = await read(edge, "/api/v1/products/p1");
    assert.equal(first.cache, "MISS");
    assert.equal(first.etag, '"v1"', "a client that reads through the cache can send it back in If-Match");
    const hit = await read(edge, "/api/v1/products/p1");
    assert.equal(hit.cache, "HIT");
    assert.equal(hit.etag, '"v1"');
    const revalidated = await read(edge, "/api/v1/products/p1", { headers: { "if-none-match": '"v1"' } });
    assert.equal(revalidated.status, 304);
    assert.equal(revalidated.etag, '"v1"');
    // A refreshed entry takes the region's new tag with the new body.
    region.state.versions.set("p1", 2);
    region.state.answerHeaders = { etag: '"v2"' };
    clock.ms += TTL_MS + 1;
    assert.equal((await read(edge, "/api/v1/products/p1")).etag, '"v1"', "the stale answer keeps its own tag");
    await eventually("the background refresh", async () => (await read(edge, "/api/v1/products/p1")).cache === "HIT");
    const fresh = await read(edge, "/api/v1/products/p1");
    assert.equal(fresh.body.version, 2);
    assert.equal(fresh.etag, '"v2"');
    // A value that is not an entity tag is not passed on as one: the body's hash replaces it.
    region.state.answerHeaders = { etag: "v3 unquoted" };
    const other = await read(edge, "/api/v1/products/p2");
    assert.match(other.etag ?? "", /^"[A-Za-z0-9_-]{22}"$/);
  } finally {
    await teardown(edge, region);
  }
});

Deno.test("edge serves a stale entry while one background refresh fetches the new one", async () => {
  const { region, edge, clock } = setup();
  try {
    await read(edge, "/api/v1/products/p1");
    region.state.versions.set("p1", 2);
    clock.ms += TTL_MS + 1;
    // Within the stale window: the old answer at once, and exactly one refresh for concurrent readers.
    const stale = await Promise.all([1, 2, 3].map(() => read(edge, "/api/v1/products/p1")));
    for (const answer of stale) {
      assert.equal(answer.cache, "STALE");
      assert.equal(answer.body.version, 1);
    }
    await eventually("the background refresh", async () => (await read(edge, "/api/v1/products/p1")).cache === "HIT");
    const fresh = await read(edge, "/api/v1/products/p1");
    assert.equal(fresh.body.version, 2);
    assert.equal(region.state.hits, 2);
    // Past the stale window the entry is not served at all.
    region.state.versions.set("p1", 3);
    clock.ms += TTL_MS + SWR_MS + 1;
    const expired = await read(edge, "/api/v1/products/p1");
    assert.equal(expired.cache, "MISS");
    assert.equal(expired.body.version, 3);
  } finally {
    await teardown(edge, region);
  }
});

Deno.test("edge stops serving a stale entry the region no longer serves", async () => {
  const { region, edge, clock } = setup();
  try {
    await read(edge, "/api/v1/products/p1");
    region.state.versions.delete("p1");
    clock.ms += TTL_MS + 1;
    assert.equal((await read(edge, "/api/v1/products/p1")).cache, "STALE");
    await eventually(
      "the refresh to drop the entry",
      async () => (await read(edge, "/api/v1/products/p1")).status === 404,
    );
  } finally {
    await teardown(edge, region);
  }
});

Deno.test("edge respects Cache-Control and never stores answers to authenticated requests that are not public", async () => {
  const key = await createEdgeTestKey();
  const { region, edge } = setup();
  const authRegion = fakeRegion("east", { jwks: { keys: [key.jwk] } });
  authRegion.state.versions.set("p1", 1);
  const authEdge = createEdge({
    regions: [authRegion],
    auth: { jwksUrls: [`${authRegion.url}/.well-known/jwks.json`], issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
    cache: { ttlMs: TTL_MS, staleWhileRevalidateMs: SWR_MS, entriesMax: 100, bytesMax: 1024 * 1024 },
  });
  try {
    for (const cacheControl of ["no-store", "private, max-age=60", "no-cache", "max-age=0"]) {
      region.state.answerHeaders = { "cache-control": cacheControl };
      edge.purge(() => true);
      assert.equal((await read(edge, "/api/v1/products/p1")).cache, "BYPASS", cacheControl);
      assert.equal((await read(edge, "/api/v1/products/p1")).cache, "BYPASS", cacheControl);
    }
    region.state.answerHeaders = { "set-cookie": "session=1" };
    assert.equal((await read(edge, "/api/v1/products/p1")).cache, "BYPASS");
    region.state.answerHeaders = { "cache-control": "public, max-age=60" };
    assert.equal((await read(edge, "/api/v1/products/p1")).cache, "MISS");
    assert.equal((await read(edge, "/api/v1/products/p1")).cache, "HIT");

    const signedIn = { headers: { authorization: `Bearer ${await key.sign("alice")}` } };
    assert.equal((await read(authEdge, "/api/v1/products/p1", signedIn)).cache, "BYPASS");
    assert.equal((await read(authEdge, "/api/v1/products/p1", signedIn)).cache, "BYPASS");
    // An anonymous read stores it; a signed-in reader may then be served the shared copy.
    assert.equal((await read(authEdge, "/api/v1/products/p1")).cache, "MISS");
    assert.equal((await read(authEdge, "/api/v1/products/p1", signedIn)).cache, "HIT");
    // Private reads are never cached, whatever they say.
    assert.equal((await read(edge, "/api/v1/orders/o-1")).cache, null);
  } finally {
    await teardown(edge, region);
    await teardown(authEdge, authRegion);
  }
});

Deno.test("a signed-in reader's stale hit refreshes the shared entry instead of deleting it", async () => {
  const key = await createEdgeTestKey();
  const region = fakeRegion("east", { jwks: { keys: [key.jwk] } });
  region.state.versions.set("p1", 1);
  const clock = { ms: Date.now() };
  const edge = createEdge({
    regions: [region],
    auth: { jwksUrls: [`${region.url}/.well-known/jwks.json`], issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
    cache: { ttlMs: TTL_MS, staleWhileRevalidateMs: SWR_MS, entriesMax: 100, bytesMax: 1024 * 1024 },
    now: () => clock.ms,
  });
  try {
    assert.equal((await read(edge, "/api/v1/products/p1")).cache, "MISS");
    clock.ms += TTL_MS + 1;
    const signedIn = { headers: { authorization: `Bearer ${await key.sign("alice")}` } };
    assert.equal((await read(edge, "/api/v1/products/p1", signedIn)).cache, "STALE");
    const hitsBefore = region.state.hits;
    await eventually("the background refresh", () => region.state.hits > hitsBefore);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // One read, not a retry loop: a deleted entry would answer MISS here (and only then HIT).
    assert.equal((await read(edge, "/api/v1/products/p1")).cache, "HIT");
  } finally {
    await teardown(edge, region);
  }
});

Deno.test("a fill whose body stalls after the headers is answered 504 within the upstream timeout, and stop() returns", async () => {
  const region = fakeRegion("east");
  region.state.versions.set("p1", 1);
  // The region answers the product's headers, one chunk, then nothing more (a stall mid-body).
  const stalling: typeof fetch = (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    if (!url.includes("/api/v1/products/p1")) return fetch(input, init);
    const body = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(new TextEncoder().encode('{"id":')) });
    return Promise.resolve(
      new Response(body, { status: 200, headers: { "content-type": "application/json", "x-bv-region": "east" } }),
    );
  };
  const edge = createEdge({
    regions: [region],
    cache: { ttlMs: TTL_MS, staleWhileRevalidateMs: SWR_MS, entriesMax: 100, bytesMax: 1024 * 1024 },
    upstreamTimeoutMs: 300,
    fetch: stalling,
  });
  try {
    const started = Date.now();
    const answer = await read(edge, "/api/v1/products/p1");
    assert.equal(answer.status, 504);
    assert.equal(answer.body.code, "COMMON.UPSTREAM_TIMEOUT");
    assert.ok(Date.now() - started < 2_000, `answered after ${Date.now() - started} ms`);
  } finally {
    await teardown(edge, region);
  }
});

Deno.test("edge caches GraphQL queries by their normalised body and never mutations", async () => {
  const key = await createEdgeTestKey();
  const region = fakeRegion("east", { jwks: { keys: [key.jwk] } });
  region.state.versions.set("p1", 1);
  const edge = createEdge({
    regions: [region],
    auth: { jwksUrls: [`${region.url}/.well-known/jwks.json`], issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
    cache: { ttlMs: TTL_MS, staleWhileRevalidateMs: SWR_MS, entriesMax: 100, bytesMax: 1024 * 1024 },
  });
  const post = (body: unknown, headers?: Record<string, string>) =>
    read(edge, "/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  try {
    const first = await post({
      query: "query P($id: ID!) { product(id: $id) { id version } }",
      variables: { id: "p1" },
    });
    assert.equal(first.cache, "MISS");
    assert.deepEqual(first.body.data.product, { id: "p1", version: 1, region: "east" });
    // Same query with other whitespace, a comment and reordered variables: the same entry.
    const same = await post({
      query: "query P($id: ID!) {\n  # the product\n  product(id: $id) {\n    id\n    version\n  }\n}",
      variables: { id: "p1" },
    });
    assert.equal(same.cache, "HIT");
    assert.deepEqual(same.body, first.body);
    const other = await post({
      query: "query P($id: ID!) { product(id: $id) { id version } }",
      variables: { id: "p2" },
    });
    assert.equal(other.cache, "MISS");
    assert.equal(region.state.hits, 2);
    const token = `Bearer ${await key.sign("admin", { claims: { roles: ["ADMIN"] } })}`;
    const mutation = { query: 'mutation { touch(id: "p1") { id } }' };
    assert.equal((await post(mutation, { authorization: token })).cache, null);
    assert.equal((await post(mutation, { authorization: token })).cache, null);
    assert.equal(region.state.hits, 4);
  } finally {
    await teardown(edge, region);
  }
});

Deno.test("edge keeps its cache within the entry and byte bounds, least recently used first", async () => {
  const { region, edge } = setup({
    cache: { ttlMs: TTL_MS, staleWhileRevalidateMs: SWR_MS, entriesMax: 2, bytesMax: 1024 * 1024 },
  });
  for (const id of ["a", "b", "c"]) region.state.versions.set(id, 1);
  try {
    await read(edge, "/api/v1/products/a");
    await read(edge, "/api/v1/products/b");
    assert.equal((await read(edge, "/api/v1/products/a")).cache, "HIT");
    await read(edge, "/api/v1/products/c");
    // b was the least recently used of the two kept.
    assert.equal((await read(edge, "/api/v1/products/a")).cache, "HIT");
    assert.equal((await read(edge, "/api/v1/products/b")).cache, "MISS");
    const metrics = await (await edge.app.request("/metrics")).text();
    assert.match(metrics, /bv_edge_cache_entries 2/);
  } finally {
    await teardown(edge, region);
  }
});

Deno.test("edge purges cached reads by key, by predicate and by product", async () => {
  const { region, edge } = setup();
  try {
    await read(edge, "/api/v1/products/p1");
    await read(edge, "/api/v1/products/p2");
    assert.equal((await read(edge, "/api/v1/inventory/p1")).cache, null, "stock is never cached at the edge");
    await read(edge, "/api/v1/products");
    assert.equal(edge.purge(["east GET /api/v1/products/p2", "no such key"]), 1);
    assert.equal((await read(edge, "/api/v1/products/p2")).cache, "MISS");
    // A product purge drops its reads and every listing (which may contain it), not other products.
    assert.equal(edge.purgeProduct("p1"), 2);
    assert.equal((await read(edge, "/api/v1/products/p2")).cache, "HIT");
    assert.equal((await read(edge, "/api/v1/products/p1")).cache, "MISS");
    assert.equal(edge.purge((entry) => entry.path.startsWith("/api/v1/products/")), 2);
  } finally {
    await teardown(edge, region);
  }
});
