import assert from "node:assert/strict";
import { eventually, fakeRegion } from "./testing/fake_region.ts";
import { followInvalidations, type InvalidationEvent } from "./invalidation_stream.ts";
import { createEdge } from "./worker.ts";

const FAST = { backoffInitialMs: 20, backoffMaxMs: 100 };

Deno.test("followInvalidations delivers purge events and reconnects after the region drops the stream", async () => {
  const region = fakeRegion("east");
  const purges: string[] = [];
  const connections: string[] = [];
  const follower = followInvalidations(region.url, {
    ...FAST,
    onPurge: ({ productId }: InvalidationEvent) => purges.push(productId),
    onConnected: () => connections.push("up"),
    onDisconnected: () => connections.push("down"),
  });
  try {
    await eventually("the first connection", () => follower.connected);
    region.invalidate("p1");
    // Split across writes, CRLF line ends, comments and unknown events are all handled.
    region.sendRaw(': heartbeat\r\nevent: purge\r\ndata: {"productId":');
    region.sendRaw('"p2"}\r\n\r\nevent: other\ndata: {"productId":"ignored"}\n\n');
    region.sendRaw('event: purge\ndata: {"nothing": 1}\n\n');
    await eventually("two purges", () => purges.length === 2);
    assert.deepEqual(purges, ["p1", "p2"]);
    assert.equal(follower.stats.ignored, 1);
    region.dropStreams();
    await eventually("a reconnection", () => region.state.streamConnects === 2 && follower.connected);
    region.invalidate("p3");
    await eventually("the purge after reconnecting", () => purges.includes("p3"));
    assert.deepEqual(connections, ["up", "down", "up"]);
  } finally {
    await follower.stop();
    await region.close();
  }
});

Deno.test("followInvalidations keeps retrying with backoff while the region is away, then connects", async () => {
  const port = freePort();
  const delays: number[] = [];
  let last = Date.now();
  let connected = false;
  const follower = followInvalidations(`http://127.0.0.1:${port}`, {
    ...FAST,
    connectTimeoutMs: 200,
    onPurge: () => {},
    onConnected: () => (connected = true),
    fetch: (input, init) => {
      const nowMs = Date.now();
      delays.push(nowMs - last);
      last = nowMs;
      return fetch(input, init);
    },
  });
  try {
    await eventually("several failed attempts", () => delays.length >= 5);
    assert.equal(follower.connected, false);
    // Capped: no delay beyond backoffMaxMs plus scheduling slack.
    assert.ok(delays.slice(1).every((ms) => ms < 100 + 200), `delays ${delays}`);
    const server = Deno.serve(
      { port, hostname: "127.0.0.1", onListen: () => {} },
      () => new Response(": hello\n\n", { headers: { "content-type": "text/event-stream" } }),
    );
    try {
      await eventually("a connection once the region is back", () => connected);
    } finally {
      await follower.stop();
      await server.shutdown();
    }
  } finally {
    await follower.stop();
  }
});

Deno.test("followInvalidations drops a stream that sends a line over its bound or falls silent", async () => {
  const region = fakeRegion("east");
  const follower = followInvalidations(region.url, {
    ...FAST,
    lineCharsMax: 64,
    idleTimeoutMs: 300,
    onPurge: () => {},
  });
  try {
    await eventually("the first connection", () => follower.connected);
    region.sendRaw(`data: ${"x".repeat(100)}`);
    await eventually("a reconnection after the long line", () => region.state.streamConnects === 2);
    // Silence past the idle timeout counts as a dead connection.
    await eventually("a reconnection after silence", () => region.state.streamConnects === 3, 2_000);
  } finally {
    await follower.stop();
    await region.close();
  }
});

Deno.test("edge purges a product's cached reads when the region's invalidation stream says so", async () => {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  for (const region of [east, west]) region.state.versions.set("p1", 1);
  const clock = { ms: Date.now() };
  const edge = createEdge({
    regions: [east, west],
    cache: { ttlMs: 60_000, staleWhileRevalidateMs: 60_000, entriesMax: 100, bytesMax: 1 << 20 },
    now: () => clock.ms,
  });
  const version = async (path: string, hint = "east") => {
    const response = await edge.app.request(path, { headers: { "x-bv-region": hint } });
    return { cache: response.headers.get("x-bv-cache"), version: (await response.json()).version };
  };
  try {
    await edge.start();
    await eventually("both streams", () => east.state.streamConnects === 1 && west.state.streamConnects === 1);
    await eventually(
      "the edge to see the streams up",
      async () => /stream_up\{region="east"\} 1/.test(await (await edge.app.request("/metrics")).text()),
    );
    assert.deepEqual(await version("/api/v1/products/p1"), { cache: "MISS", version: 1 });
    assert.deepEqual(await version("/api/v1/products/p1", "west"), { cache: "MISS", version: 1 });
    east.state.versions.set("p1", 2);
    west.state.versions.set("p1", 2);
    // Within the TTL the old version is served until the purge arrives.
    assert.deepEqual(await version("/api/v1/products/p1"), { cache: "HIT", version: 1 });
    east.invalidate("p1");
    await eventually("the purge", async () => (await version("/api/v1/products/p1")).version === 2);
    // An event from one region purges what came from every region.
    assert.deepEqual(await version("/api/v1/products/p1", "west"), { cache: "MISS", version: 2 });

    // While east's stream is down its stale entries are not served: the staleness bound is the TTL alone.
    await east.close();
    await eventually(
      "east's stream to be down",
      async () => /stream_up\{region="east"\} 0/.test(await (await edge.app.request("/metrics")).text()),
    );
    clock.ms += 60_001;
    const afterTtl = await edge.app.request("/api/v1/products/p1", { headers: { "x-bv-region": "east" } });
    assert.notEqual(afterTtl.headers.get("x-bv-cache"), "STALE");
    await afterTtl.body?.cancel();
  } finally {
    await edge.stop();
    await west.close();
  }
});

function freePort(): number {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
