import assert from "node:assert/strict";
import { proxyWebSocket } from "../shared/http/websocket_proxy.ts";
import { eventually, type FakeRegion, fakeRegion } from "./testing/fake_region.ts";
import { createEdge, type Edge, STICKY_COOKIE } from "./worker.ts";

interface Rig {
  readonly east: FakeRegion;
  readonly west: FakeRegion;
  readonly edge: Edge;
  readonly wsUrl: string;
  readonly httpUrl: string;
  close(): Promise<void>;
}

/** An edge on real loopback HTTP with Deno's WebSocket proxy injected, as `edge/main.ts` does. */
function rig(): Rig {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  const edge = createEdge({
    regions: [east, west],
    routing: { latencyEwmaAlpha: 1, latencySamplesMin: 1 },
    webSocket: (request, target) => proxyWebSocket(request, { ...target, connectTimeoutMs: 2_000 }),
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, edge.app.fetch);
  return {
    east,
    west,
    edge,
    wsUrl: `ws://127.0.0.1:${server.addr.port}/ws/echo`,
    httpUrl: `http://127.0.0.1:${server.addr.port}/ws/echo`,
    close: async () => {
      await edge.stop();
      await server.shutdown();
      await Promise.all([east.close(), west.close()]);
    },
  };
}

interface Session {
  /** Sends `text` and resolves with the echo, which names the region that answered. */
  ask(text: string): Promise<string>;
  close(): Promise<void>;
}

async function connect(url: string, headers: Record<string, string> = {}): Promise<Session> {
  // Deno's WebSocket accepts handshake headers (the cookie a browser would send by itself).
  const socket = new WebSocket(url, { headers } as unknown as string[]);
  const inbox: string[] = [];
  let waiter: (() => void) | undefined;
  socket.onmessage = (event) => {
    inbox.push(String(event.data));
    waiter?.();
  };
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = (event) => reject(new Error((event as ErrorEvent).message));
  });
  const closed = new Promise<void>((resolve) => socket.addEventListener("close", () => resolve()));
  return {
    ask: async (text) => {
      socket.send(text);
      if (inbox.length === 0) await new Promise<void>((resolve) => (waiter = resolve));
      return inbox.shift()!;
    },
    close: async () => {
      socket.close();
      await closed;
    },
  };
}

Deno.test("a WebSocket stays on the region it started in when the edge starts preferring another", async () => {
  const r = rig();
  const sessions: Session[] = [];
  try {
    r.west.state.readyDelayMs = 60;
    await r.edge.checkHealth();
    const first = await connect(r.wsUrl);
    sessions.push(first);
    assert.equal(await first.ask("a"), "east:a");
    // East becomes the slow one: new sessions go west, the established one is never moved.
    r.west.state.readyDelayMs = 0;
    r.east.state.readyDelayMs = 60;
    await r.edge.checkHealth();
    const fresh = await connect(r.wsUrl);
    sessions.push(fresh);
    assert.equal(await fresh.ask("b"), "west:b");
    assert.equal(await first.ask("c"), "east:c");
    // A reconnect carrying the sticky cookie goes back to east, over both the latency and the hint.
    const sticky = await connect(r.wsUrl, { cookie: `theme=dark; ${STICKY_COOKIE}=east`, "x-bv-region": "west" });
    sessions.push(sticky);
    assert.equal(await sticky.ask("d"), "east:d");
    assert.equal(r.east.state.wsConnects, 2);
    assert.equal(r.west.state.wsConnects, 1);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await r.close();
  }
});

Deno.test("the edge hands out the sticky cookie on the upgrade and ignores it once its region is out", async () => {
  const r = rig();
  const sessions: Session[] = [];
  try {
    await r.edge.checkHealth();
    // A bare handshake through fetch shows the 101's headers (a browser stores the cookie itself).
    const handshake = await fetch(r.httpUrl, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      },
    });
    assert.equal(handshake.status, 101);
    assert.equal(handshake.headers.get("x-bv-region"), "east");
    assert.match(handshake.headers.get("set-cookie") ?? "", /^bv-region=east; Path=\/ws; Max-Age=86400; HttpOnly/);
    assert.match(handshake.headers.get("traceparent") ?? "", /^00-4bf92f3577b34da6a3ce929d0e0e4736-/);
    await handshake.body?.cancel();
    await eventually("the upstream handshake", () => r.east.state.wsLastHeaders !== undefined);
    assert.match(r.east.state.wsLastHeaders!.get("traceparent") ?? "", /^00-4bf92f3577b34da6a3ce929d0e0e4736-/);
    assert.equal(r.east.state.wsLastHeaders!.get("x-bv-edge-region"), "east");
    r.east.state.ready = false;
    await r.edge.checkHealth();
    const moved = await connect(r.wsUrl, { cookie: `${STICKY_COOKIE}=east` });
    sessions.push(moved);
    assert.equal(await moved.ask("e"), "west:e", "the sticky region is out: the session starts on west");
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await r.close();
  }
});

Deno.test("a proxied WebSocket handshake carries the client's address appended to X-Forwarded-For", async () => {
  const r = rig();
  const sessions: Session[] = [];
  try {
    await r.edge.checkHealth();
    const session = await connect(r.wsUrl, { "x-forwarded-for": "203.0.113.7" });
    sessions.push(session);
    assert.equal(await session.ask("a"), "east:a");
    assert.equal(r.east.state.wsLastHeaders?.get("x-forwarded-for"), "203.0.113.7, 127.0.0.1");
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await r.close();
  }
});
