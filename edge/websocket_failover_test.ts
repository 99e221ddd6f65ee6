import assert from "node:assert/strict";
import { proxyWebSocket } from "../shared/http/websocket_proxy.ts";
import { type FakeRegion, fakeRegion } from "./testing/fake_region.ts";
import { createEdge, type Edge, STICKY_COOKIE } from "./worker.ts";

interface Rig {
  readonly east: FakeRegion;
  readonly west: FakeRegion;
  readonly edge: Edge;
  readonly port: number;
  readonly server: Deno.HttpServer;
  close(): Promise<void>;
}

/** Edge in front of east and west on real loopback HTTP, with Deno's WebSocket proxy injected (as `main.ts`). */
function rig(): Rig {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  const edge = createEdge({
    regions: [east, west],
    webSocket: (request, target) => proxyWebSocket(request, { ...target, connectTimeoutMs: 2_000 }),
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, edge.app.fetch);
  return {
    east,
    west,
    edge,
    port: server.addr.port,
    server,
    close: async () => {
      await edge.stop();
      await server.shutdown();
      await Promise.all([east.close(), west.close()]);
    },
  };
}

/** A bare handshake through fetch, so the test sees the 101's (or the refusal's) headers. */
async function handshake(port: number, cookie?: string): Promise<Response> {
  return await fetch(`http://127.0.0.1:${port}/ws/echo`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      ...(cookie === undefined ? {} : { cookie }),
    },
  });
}

/** Opens a WebSocket through the edge and resolves with the echo of "ping" (which names the region). */
async function echo(port: number, cookie: string): Promise<string> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws/echo`, { headers: { cookie } } as unknown as string[]);
  // Listened for from the start: a refused socket may have closed before the handshake's outcome is awaited.
  const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
  try {
    return await new Promise<string>((resolve, reject) => {
      socket.onopen = () => socket.send("ping");
      socket.onmessage = (event) => resolve(String(event.data));
      socket.onerror = (event) => reject(new Error((event as ErrorEvent).message));
    });
  } finally {
    socket.close();
    await closed;
  }
}

Deno.test("a WebSocket handshake the sticky region refuses is retried once elsewhere, cookie moved", async () => {
  const r = rig();
  try {
    r.east.state.wsRefuseStatus = 503;
    const moved = await handshake(r.port, `${STICKY_COOKIE}=east`);
    assert.equal(moved.status, 101);
    await moved.body?.cancel();
    assert.equal(moved.headers.get("x-bv-region"), "west");
    assert.match(moved.headers.get("set-cookie") ?? "", /^bv-region=west; Path=\/ws; Max-Age=86400; HttpOnly/);
    assert.equal(r.east.state.wsRefused, 1, "the sticky region was asked first");
    assert.match(await (await r.edge.app.request("/metrics")).text(), /bv_edge_failovers_total 1/);
    // A real client session lands on west and talks to it.
    assert.equal(await echo(r.port, `${STICKY_COOKIE}=east`), "west:ping");
    assert.equal(r.east.state.wsRefused, 2);
    assert.equal(r.east.state.wsConnects, 0);
  } finally {
    await r.close();
  }
});

Deno.test("a WebSocket handshake to an unreachable region lands on the other one in the same request", async () => {
  const r = rig();
  try {
    // East is gone but no probe has said so yet: the router still picks it first.
    await r.east.close();
    assert.equal(await echo(r.port, `${STICKY_COOKIE}=east`), "west:ping");
    assert.equal(r.west.state.wsConnects, 1);
  } finally {
    await r.edge.stop();
    await r.server.shutdown();
    await r.west.close();
  }
});

Deno.test("a WebSocket handshake both regions refuse is tried once on each, then answered 503 problem", async () => {
  const r = rig();
  try {
    r.east.state.wsRefuseStatus = 502;
    r.west.state.wsRefuseStatus = 503;
    const refused = await handshake(r.port);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("content-type"), "application/problem+json");
    assert.equal((await refused.json()).code, "COMMON.UPSTREAM_UNAVAILABLE");
    assert.equal(refused.headers.get("set-cookie"), null, "no region to stick to");
    assert.equal(r.east.state.wsRefused, 1);
    assert.equal(r.west.state.wsRefused, 1);
  } finally {
    await r.close();
  }
});

Deno.test("a WebSocket handshake the region refuses with 401 is answered 401, not retried elsewhere", async () => {
  const r = rig();
  try {
    r.east.state.wsRefuseStatus = 401;
    const refused = await handshake(r.port, `${STICKY_COOKIE}=east`);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("content-type"), "application/problem+json");
    assert.equal((await refused.json()).code, "AUTH.UNAUTHENTICATED");
    assert.equal(refused.headers.get("set-cookie"), null, "no region took the session");
    assert.equal(r.east.state.wsRefused, 1);
    assert.deepEqual([r.west.state.wsRefused, r.west.state.wsConnects], [0, 0], "west was never asked");
    assert.match(await (await r.edge.app.request("/metrics")).text(), /bv_edge_failovers_total 0/);
  } finally {
    await r.close();
  }
});
