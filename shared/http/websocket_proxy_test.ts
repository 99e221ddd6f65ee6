import assert from "node:assert/strict";
import { isWebSocketUpgrade, proxyWebSocket } from "./websocket_proxy.ts";

function upstreamServer() {
  const seen: { authorization: string | null }[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    if (!isWebSocketUpgrade(request)) return new Response("no", { status: 400 });
    seen.push({ authorization: request.headers.get("authorization") });
    if (new URL(request.url).pathname === "/refuse") return new Response("denied", { status: 401 });
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      if (event.data === "bye") socket.close(4001, "bye now");
      else socket.send(`echo:${event.data}`);
    };
    return response;
  });
  return { server, seen, url: `ws://127.0.0.1:${server.addr.port}` };
}

function proxyServer(upstream: string) {
  return Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    (request) =>
      proxyWebSocket(request, { upstream, connectTimeoutMs: 1_000, setHeaders: { "correlation-id": "c-1" } }),
  );
}

function next(socket: WebSocket, type: "message" | "close"): Promise<MessageEvent | CloseEvent> {
  return new Promise((resolve) => socket.addEventListener(type, (e) => resolve(e as MessageEvent), { once: true }));
}

Deno.test("WebSocket proxy carries messages both ways, the Authorization header, and the close code", async () => {
  const up = upstreamServer();
  const proxy = proxyServer(up.url);
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.addr.port}/ws/orders?x=1`, {
      headers: { authorization: "Bearer t" },
    } as unknown as string[]);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    ws.send("hello");
    const reply = await next(ws, "message") as MessageEvent;
    assert.equal(reply.data, "echo:hello");
    assert.deepEqual(up.seen, [{ authorization: "Bearer t" }]);
    const closed = next(ws, "close");
    ws.send("bye");
    const event = await closed as CloseEvent;
    assert.equal(event.code, 4001);
    assert.equal(event.reason, "bye now");
  } finally {
    await proxy.shutdown();
    await up.server.shutdown();
  }
});

Deno.test("a refused upstream handshake answers 503 problem+json instead of a dead socket", async () => {
  const up = upstreamServer();
  const proxy = proxyServer(up.url);
  try {
    const response = await fetch(`http://127.0.0.1:${proxy.addr.port}/refuse`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
    assert.equal(response.status, 503);
    assert.equal((await response.json()).code, "COMMON.UPSTREAM_UNAVAILABLE");
  } finally {
    await proxy.shutdown();
    await up.server.shutdown();
  }
});
