import assert from "node:assert/strict";
import { createEdge } from "./worker.ts";

/** A stand-in region ingress: a real HTTP server that names itself and can turn unready. */
function fakeRegion(name: string) {
  const state = { ready: true, hits: 0 };
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/readyz") return new Response(null, { status: state.ready ? 200 : 503 });
    state.hits++;
    return Response.json({ region: name, path, method: request.method });
  });
  return { name, url: `http://127.0.0.1:${server.addr.port}`, state, server };
}

Deno.test("edge routes to the hinted region and to the first region without a hint", async () => {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  // Probe latency is not the subject here (region_router_test.ts): no loopback difference may move traffic.
  const edge = createEdge({ regions: [east, west], healthTimeoutMs: 500, routing: { latencyToleranceMs: 60_000 } });
  try {
    await edge.checkHealth();
    const hinted = await edge.app.request("/api/v1/products/1", { headers: { "x-bv-region": "west" } });
    assert.equal(hinted.status, 200);
    assert.equal(hinted.headers.get("x-bv-region"), "west");
    assert.deepEqual(await hinted.json(), { region: "west", path: "/api/v1/products/1", method: "GET" });
    const plain = await edge.app.request("/api/v1/products/1");
    assert.equal((await plain.json()).region, "east");
  } finally {
    await Promise.all([east.server.shutdown(), west.server.shutdown()]);
  }
});

Deno.test("edge fails over when a region stops answering and fails back when it returns", async () => {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  const edge = createEdge({ regions: [east, west], healthTimeoutMs: 500 });
  try {
    await edge.checkHealth();
    await east.server.shutdown();
    // East is still believed healthy: the GET fails to connect there and is retried on west.
    const failover = await edge.app.request("/api/v1/products/1");
    assert.equal(failover.status, 200);
    assert.equal((await failover.json()).region, "west");
    assert.equal(edge.health().find((r) => r.name === "east")?.healthy, false);
    // Unready (not just unreachable) regions are skipped after the next probe.
    west.state.ready = false;
    await edge.checkHealth();
    // With no region healthy the edge still tries (panic routing): west answers although it said not ready,
    // while the edge's own readiness is red and east, unreachable, is never the answer.
    const panic = await edge.app.request("/api/v1/products/1");
    assert.equal(panic.status, 200);
    assert.equal((await panic.json()).region, "west");
    assert.equal((await edge.app.request("/readyz")).status, 503);
    west.state.ready = true;
    await edge.checkHealth();
    const back = await edge.app.request("/api/v1/products/1");
    assert.equal((await back.json()).region, "west");
  } finally {
    await west.server.shutdown();
  }
});

Deno.test("edge does not replay a POST with a body on another region", async () => {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  const edge = createEdge({ regions: [east, west], healthTimeoutMs: 500 });
  try {
    await edge.checkHealth();
    await east.server.shutdown();
    const response = await edge.app.request("/api/v1/orders", {
      method: "POST",
      body: JSON.stringify({ items: [] }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(response.status, 503);
    assert.equal((await response.json()).code, "COMMON.UPSTREAM_UNAVAILABLE");
    assert.equal(west.state.hits, 0);
  } finally {
    await west.server.shutdown();
  }
});
