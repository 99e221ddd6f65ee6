import assert from "node:assert/strict";
import { type FakeRegion, fakeRegion } from "./testing/fake_region.ts";
import { createEdge, type Edge, EDGE_CACHE_DEFAULTS, STICKY_COOKIE } from "./worker.ts";

interface Rig {
  readonly east: FakeRegion;
  readonly west: FakeRegion;
  readonly edge: Edge;
  /** Sends a request as client `address` (the last X-Forwarded-For entry); returns the answering region. */
  send(address: string, path: string, init?: { method?: string; headers?: Record<string, string> }): Promise<Answer>;
  close(): Promise<void>;
}

interface Answer {
  readonly region: string | null;
  /** The region the body says answered (the fake regions name themselves). */
  readonly bodyRegion: string;
  readonly setCookie: string | null;
}

/** Two fake regions behind an edge whose router follows the last probe (alpha 1, one sample). */
function rig(): Rig {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  for (const region of [east, west]) region.state.versions.set("p1", 1);
  const edge = createEdge({
    regions: [east, west],
    routing: { latencyEwmaAlpha: 1, latencySamplesMin: 1 },
    cache: { ...EDGE_CACHE_DEFAULTS, followInvalidations: false },
  });
  return {
    east,
    west,
    edge,
    send: async (address, path, init = {}) => {
      const response = await edge.app.request(path, {
        method: init.method ?? "GET",
        headers: { "x-forwarded-for": address, ...init.headers },
      });
      const body = await response.json();
      return {
        region: response.headers.get("x-bv-region"),
        bodyRegion: body.region,
        setCookie: response.headers.get("set-cookie"),
      };
    },
    close: async () => {
      await edge.stop();
      await Promise.all([east.close(), west.close()]);
    },
  };
}

Deno.test("edge keeps an HTTP client on its region while latency flips, and tells the browser in a cookie", async () => {
  const r = rig();
  try {
    r.west.state.readyDelayMs = 60;
    await r.edge.checkHealth();
    const first = await r.send("203.0.113.1", "/api/v1/carts/c1");
    assert.equal(first.region, "east");
    assert.match(first.setCookie ?? "", /^bv-region=east; Path=\/; Max-Age=300; HttpOnly; SameSite=Lax$/);
    r.west.state.readyDelayMs = 0;
    r.east.state.readyDelayMs = 60;
    await r.edge.checkHealth();
    const eastHits = r.east.state.hits;
    for (let i = 0; i < 3; i++) {
      const again = await r.send("203.0.113.1", "/api/v1/carts/c1", { headers: { cookie: `${STICKY_COOKIE}=east` } });
      assert.deepEqual(again, { region: "east", bodyRegion: "east", setCookie: null }, "no new cookie when it agrees");
    }
    assert.equal(r.east.state.hits, eastHits + 3);
    // A cached public read misses, and its fill goes to the client's region, not the one latency prefers.
    const read = await r.send("203.0.113.1", "/api/v1/products/p1");
    assert.deepEqual(read, { region: "east", bodyRegion: "east", setCookie: null });
    const other = await r.send("203.0.113.2", "/api/v1/carts/c2");
    assert.equal(other.region, "west", "a new client goes where latency says: two clients, two regions");
    assert.equal((await r.send("203.0.113.2", "/api/v1/products/p1")).bodyRegion, "west");
  } finally {
    await r.close();
  }
});

Deno.test("edge serves a healthy hinted region for that request only; the client's pin is untouched", async () => {
  const r = rig();
  try {
    await r.edge.checkHealth();
    assert.equal((await r.send("203.0.113.5", "/api/v1/orders")).region, "east");
    const hinted = await r.send("203.0.113.5", "/api/v1/orders", { headers: { "x-bv-region": "west" } });
    assert.deepEqual(hinted, { region: "west", bodyRegion: "west", setCookie: null });
    assert.equal((await r.send("203.0.113.5", "/api/v1/orders")).region, "east");
    r.west.state.ready = false;
    await r.edge.checkHealth();
    const outHint = await r.send("203.0.113.5", "/api/v1/orders", { headers: { "x-bv-region": "west" } });
    assert.equal(outHint.region, "east", "a hint naming a region that is out falls back to the pin");
  } finally {
    await r.close();
  }
});

Deno.test("edge moves a pinned client off a region that goes out and home again on its next write", async () => {
  const r = rig();
  try {
    await r.edge.checkHealth();
    assert.equal((await r.send("198.51.100.7", "/api/v1/carts/c1")).region, "east");
    r.east.state.ready = false;
    await r.edge.checkHealth();
    const moved = await r.send("198.51.100.7", "/api/v1/carts/c1");
    assert.equal(moved.region, "west");
    assert.match(moved.setCookie ?? "", /^bv-region=west;/);
    r.east.state.ready = true;
    await r.edge.checkHealth();
    await r.edge.checkHealth();
    assert.equal(r.edge.health()[0].healthy, true, "east is back");
    assert.equal((await r.send("198.51.100.7", "/api/v1/carts/c1")).region, "west", "a read stays on west");
    const write = await r.send("198.51.100.7", "/api/v1/carts/c1/items", { method: "POST" });
    assert.equal(write.region, "east", "the next write goes home");
    assert.equal((await r.send("198.51.100.7", "/api/v1/carts/c1")).region, "east", "and the reads follow it");
  } finally {
    await r.close();
  }
});
