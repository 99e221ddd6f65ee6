import assert from "node:assert/strict";
import { createRegionRouter, type RegionRouter } from "./region_router.ts";
import { createEdge } from "./worker.ts";
import { fakeRegion } from "./testing/fake_region.ts";

function probeMany(router: RegionRouter, latencies: Record<string, number>, times = 5): void {
  for (let i = 0; i < times; i++) {
    for (const [name, latencyMs] of Object.entries(latencies)) router.recordProbe(name, { kind: "ready", latencyMs });
  }
}

Deno.test("router sends unhinted requests to the healthy region with the lowest latency EWMA", () => {
  const router = createRegionRouter(["east", "west"]);
  assert.equal(router.choose(null), "east", "before any probe: preference order");
  probeMany(router, { east: 40, west: 4 });
  assert.equal(router.choose(null), "west");
  // Jitter within the tolerance does not move traffic off the preferred region.
  probeMany(router, { east: 3, west: 1 }, 30);
  assert.equal(router.choose(null), "east");
  const ewma = router.health().find((r) => r.name === "east")!.latencyMs;
  assert.ok(ewma >= 3 && ewma < 3.1, `east EWMA converges on its probes, got ${ewma}`);
});

Deno.test("router lets latency move traffic only after a few probes of each region", () => {
  const router = createRegionRouter(["east", "west"]);
  probeMany(router, { east: 80, west: 2 }, 2);
  assert.equal(router.choose(null), "east", "two cold probes say little: preference order");
  assert.equal(router.choose("east"), "east");
  probeMany(router, { east: 80, west: 2 }, 1);
  assert.equal(router.choose(null), "west");
  assert.equal(router.choose("east"), "west", "80 ms vs 2 ms: the hint is overridden");
});

Deno.test("router keeps a hinted region within 3x or 50 ms of the fastest, overrides it beyond both", () => {
  const router = createRegionRouter(["east", "west"]);
  probeMany(router, { east: 2, west: 30 }, 30);
  assert.equal(router.choose("west"), "west", "15x slower but only 28 ms: the hint wins");
  probeMany(router, { east: 100, west: 250 }, 30);
  assert.equal(router.choose("west"), "west", "150 ms slower but only 2.5x: the hint wins");
  probeMany(router, { east: 10, west: 200 }, 30);
  assert.equal(router.choose("west"), "east", "20x and 190 ms slower: overridden");
  assert.equal(router.choose("nowhere"), "east", "an unknown hint is ignored");
});

Deno.test("router takes a region out after N failed probes or one not-ready answer, back after M good ones", () => {
  const changes: string[] = [];
  const router = createRegionRouter(
    ["east", "west"],
    { unhealthyAfterFailures: 3, healthyAfterSuccesses: 2 },
    (n, h) => changes.push(`${n}:${h ? "up" : "down"}`),
  );
  router.recordProbe("east", { kind: "failed", detail: "timeout" });
  router.recordProbe("east", { kind: "failed", detail: "timeout" });
  assert.equal(router.isHealthy("east"), true, "two lost probes are not an outage");
  router.recordProbe("east", { kind: "failed", detail: "timeout" });
  assert.equal(router.isHealthy("east"), false);
  assert.equal(router.choose("east"), "west", "failover: the hint names a region that is out");
  router.recordProbe("east", { kind: "ready", latencyMs: 1 });
  assert.equal(router.isHealthy("east"), false, "one good probe is not enough while west serves");
  router.recordProbe("east", { kind: "ready", latencyMs: 1 });
  assert.equal(router.choose("east"), "east", "failback after two good probes");
  router.recordProbe("west", { kind: "not-ready", detail: "readyz answered 503" });
  assert.equal(router.isHealthy("west"), false, "a region that says it is not ready is out at once");
  assert.deepEqual(changes, ["east:down", "east:up", "west:down"]);
});

Deno.test("router brings a region back on its first good probe when no region is healthy", () => {
  const router = createRegionRouter(["east", "west"], { healthyAfterSuccesses: 3 });
  router.recordUnreachable("east", "refused");
  router.recordUnreachable("west", "refused");
  assert.equal(router.choose(null), "east", "panic routing: preference order while none is healthy");
  assert.equal(router.choose("west"), "west", "panic routing: the hint while none is healthy");
  assert.equal(router.choose(null, "east"), "west", "panic routing: a retry still moves on");
  router.recordProbe("west", { kind: "ready", latencyMs: 5 });
  assert.equal(router.choose("east"), "west");
  router.recordProbe("east", { kind: "ready", latencyMs: 1 });
  assert.equal(router.isHealthy("east"), false, "west serves again, so east needs its three good probes");
});

Deno.test("edge routes by probe latency and the hint rule, fails over to a ready region, fails back", async () => {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  const edge = createEdge({
    regions: [east, west],
    healthTimeoutMs: 1_000,
    routing: { latencyEwmaAlpha: 1, latencySamplesMin: 1 },
  });
  const regionOf = async (hint?: string) => {
    const response = await edge.app.request("/api/v1/things", { headers: hint ? { "x-bv-region": hint } : {} });
    await response.body?.cancel();
    return response.headers.get("x-bv-region");
  };
  try {
    east.state.readyDelayMs = 25;
    await edge.checkHealth();
    assert.equal(await regionOf(), "west", "east answers its probe 25 ms later");
    assert.equal(await regionOf("east"), "east", "25 ms slower is within the 50 ms margin: the hint wins");
    east.state.readyDelayMs = 250;
    await edge.checkHealth();
    assert.equal(await regionOf("east"), "west", "east is 250x and ~250 ms slower: the hint is overridden");
    east.state.readyDelayMs = 0;
    west.state.ready = false;
    await edge.checkHealth();
    assert.equal(await regionOf("west"), "east", "failover: west says it is not ready");
    west.state.ready = true;
    await edge.checkHealth();
    assert.equal(await regionOf("west"), "east", "one good probe: west is not back yet");
    await edge.checkHealth();
    assert.equal(await regionOf("west"), "west", "failback after two good probes");
  } finally {
    await Promise.all([east.close(), west.close()]);
  }
});
