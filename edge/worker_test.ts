import assert from "node:assert/strict";
import { eventually, fakeRegion as fakeIngress } from "./testing/fake_region.ts";
import { createEdge, EDGE_CACHE_DEFAULTS, type EdgeOptions } from "./worker.ts";

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

/** The edge on a real loopback server, as `edge/main.ts` serves it (the server hands it the peer's address). */
function servedEdge(options: EdgeOptions) {
  const edge = createEdge(options);
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, edge.app.fetch);
  return { edge, server, url: `http://127.0.0.1:${server.addr.port}` };
}

/** `work`, or a failure naming `what` once `ms` passed without it settling (instead of a hung test). */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("edge appends the client's address to X-Forwarded-For as the ingress does, and never takes a client's for it", async () => {
  const region = fakeIngress("east");
  region.state.versions.set("p1", 1);
  const { edge, server, url } = servedEdge({
    regions: [region],
    cache: { ...EDGE_CACHE_DEFAULTS, followInvalidations: false },
  });
  const forwardedFor = async (path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${url}${path}`, { headers });
    await response.body?.cancel();
    return region.state.lastHeaders?.get("x-forwarded-for");
  };
  try {
    assert.equal(await forwardedFor("/api/v1/orders/o1"), "127.0.0.1", "a proxied request starts the list");
    assert.equal(
      await forwardedFor("/api/v1/orders/o1", { "x-forwarded-for": "203.0.113.7" }),
      "203.0.113.7, 127.0.0.1",
      "a client's list is passed on and appended to: its last entry is the peer the edge saw",
    );
    assert.equal(
      await forwardedFor("/api/v1/products/p1", { "x-forwarded-for": "203.0.113.8" }),
      "203.0.113.8, 127.0.0.1",
      "a cache fill is the client's request too",
    );
  } finally {
    await server.shutdown();
    await edge.stop();
    await region.close();
  }
});

Deno.test("edge takes the client's address from clientAddressOf where the runtime gives it in a header (Workers)", async () => {
  const region = fakeIngress("east");
  const edge = createEdge({
    regions: [region],
    clientAddressOf: (request) => request.headers.get("cf-connecting-ip") ?? undefined,
    rateLimit: { perClient: { ratePerSec: 1, burst: 1 }, perSubject: { ratePerSec: 100, burst: 100 } },
  });
  const from = (address: string) => ({ headers: { "cf-connecting-ip": address, "x-forwarded-for": "10.0.0.9" } });
  try {
    const first = await edge.app.request("/api/v1/orders/o1", from("198.51.100.4"));
    assert.equal(first.status, 200);
    assert.equal(region.state.lastHeaders?.get("x-forwarded-for"), "10.0.0.9, 198.51.100.4");
    // The rate limiters count the same address by default, not the client-supplied list.
    assert.equal((await edge.app.request("/api/v1/orders/o1", from("198.51.100.4"))).status, 429);
    assert.equal((await edge.app.request("/api/v1/orders/o1", from("198.51.100.5"))).status, 200);
  } finally {
    await edge.stop();
    await region.close();
  }
});

Deno.test("edge.stop() ends a proxied event stream with a last comment, so the server's drain does not wait on it", async () => {
  // Without `flashSales`, /sse/flash-sales is proxied per client like /sse/orders/{id}.
  const region = fakeIngress("east");
  const { edge, server, url } = servedEdge({ regions: [region] });
  let reader: ReadableStreamDefaultReader<string> | undefined;
  try {
    const response = await fetch(`${url}/sse/flash-sales`);
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    assert.match((await reader.read()).value ?? "", /: connected/);
    assert.equal(region.state.flashOpen, 1);
    // What main.ts does when the lifecycle's drain begins: stop the edge, then the server drains.
    void edge.stop();
    await within(2_000, "the server's drain", server.shutdown());
    let rest = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += chunk.value;
    assert.match(rest, /^: shutting down; reconnect with Last-Event-ID\n\n$/);
    await eventually("the region's stream to be released", () => region.state.flashOpen === 0);
  } finally {
    await reader?.cancel().catch(() => {});
    await server.shutdown();
    await edge.stop();
    await region.close();
  }
});
