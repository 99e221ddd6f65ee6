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

/** A bare handshake through fetch, so the test sees the refusal's status and body. */
function handshake(port: number, path: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
}

Deno.test("an upstream handshake refused with 401 is answered 401 problem+json, not an upgrade or a 503", async () => {
  const up = upstreamServer();
  const proxy = proxyServer(up.url);
  try {
    const response = await handshake(proxy.addr.port, "/refuse");
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("content-type"), "application/problem+json");
    assert.equal(response.headers.get("www-authenticate"), "Bearer");
    const body = await response.json();
    assert.equal(body.code, "AUTH.UNAUTHENTICATED");
    assert.equal(body.status, 401);
    assert.equal(up.seen.length, 1, "the upstream saw one handshake");
  } finally {
    await proxy.shutdown();
    await up.server.shutdown();
  }
});

Deno.test("upstream handshake refusals keep their status; a non-WebSocket answer is 502", async () => {
  const statuses: Record<string, number> = { "/s/403": 403, "/s/429": 429, "/s/503": 503, "/s/200": 200 };
  const up = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    (request) => new Response("no", { status: statuses[new URL(request.url).pathname] ?? 404 }),
  );
  const proxy = proxyServer(`ws://127.0.0.1:${up.addr.port}`);
  try {
    const seen: Record<string, [number, string]> = {};
    for (const path of Object.keys(statuses)) {
      const response = await handshake(proxy.addr.port, path);
      seen[path] = [response.status, (await response.json()).code];
    }
    assert.deepEqual(seen, {
      "/s/403": [403, "AUTH.FORBIDDEN"],
      "/s/429": [429, "COMMON.RATE_LIMITED"],
      "/s/503": [503, "COMMON.UPSTREAM_UNAVAILABLE"],
      "/s/200": [502, "COMMON.UPSTREAM_UNAVAILABLE"],
    });
  } finally {
    await proxy.shutdown();
    await up.shutdown();
  }
});

Deno.test("an upstream that cannot be reached is answered 503 problem+json", async () => {
  // A port that was just listening and is now closed: the connect is refused.
  const gone = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (gone.addr as Deno.NetAddr).port;
  gone.close();
  const proxy = proxyServer(`ws://127.0.0.1:${port}`);
  try {
    const response = await handshake(proxy.addr.port, "/ws/orders");
    assert.equal(response.status, 503);
    const body = await response.json();
    assert.equal(body.code, "COMMON.UPSTREAM_UNAVAILABLE");
    assert.match(body.detail, /unavailable/);
  } finally {
    await proxy.shutdown();
  }
});

Deno.test("an upstream that does not finish the handshake in time is answered 503 problem+json", async () => {
  // Accepts the connection and never answers.
  const silent = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  const proxy = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    (request) =>
      proxyWebSocket(request, {
        upstream: `ws://127.0.0.1:${(silent.addr as Deno.NetAddr).port}`,
        connectTimeoutMs: 200,
      }),
  );
  try {
    const response = await handshake(proxy.addr.port, "/ws/orders");
    assert.equal(response.status, 503);
    assert.match((await response.json()).detail, /no handshake within 200 ms/);
  } finally {
    await proxy.shutdown();
    silent.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});

Deno.test("a malformed handshake is answered 400 problem+json before any upstream socket is opened", async () => {
  const up = upstreamServer();
  const proxy = proxyServer(up.url);
  try {
    const response = await fetch(`http://127.0.0.1:${proxy.addr.port}/ws/orders`, {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13" },
    });
    assert.equal(response.status, 400);
    assert.equal(response.headers.get("content-type"), "application/problem+json");
    const body = await response.json();
    assert.equal(body.code, "COMMON.VALIDATION_FAILED");
    assert.match(body.detail, /Sec-WebSocket-Key/);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(up.seen, [], "no upstream handshake was made");
  } finally {
    await proxy.shutdown();
    await up.server.shutdown();
  }
});

Deno.test("what the upstream sends as soon as it is open reaches the client (held until the client side opens)", async () => {
  const greeter = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      socket.send("welcome");
      socket.send("second");
    };
    return response;
  });
  const proxy = proxyServer(`ws://127.0.0.1:${greeter.addr.port}`);
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.addr.port}/ws/orders`);
    const received: string[] = [];
    const both = new Promise<void>((resolve) => {
      ws.onmessage = (event) => {
        received.push(event.data);
        if (received.length === 2) resolve();
      };
    });
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 3_000));
    await Promise.race([both, timeout]);
    assert.deepEqual(received, ["welcome", "second"]);
    const closed = next(ws, "close");
    ws.close();
    await closed;
  } finally {
    await proxy.shutdown();
    await greeter.shutdown();
  }
});

/** An upstream that answers each handshake after `delayMs` and counts its sockets still open. */
function slowUpstream(delayMs: number) {
  const sockets = { opened: 0, open: 0, closeCodes: [] as number[] };
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (request) => {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      sockets.opened++;
      sockets.open++;
    };
    socket.onmessage = (event) => socket.send(`echo:${event.data}`);
    socket.onclose = (event) => {
      sockets.open--;
      sockets.closeCodes.push(event.code);
    };
    return response;
  });
  return { server, sockets, url: `ws://127.0.0.1:${server.addr.port}` };
}

/** `server.shutdown()`, failing instead of hanging when a connection is still held after `timeoutMs`. */
async function shutdownWithin(server: Deno.HttpServer, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`A connection was still held ${timeoutMs} ms into shutdown`)), timeoutMs);
  });
  try {
    await Promise.race([server.shutdown(), late]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const RAW_HANDSHAKE = "GET /ws/orders HTTP/1.1\r\nHost: proxy.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

Deno.test("a client that leaves during the upstream handshake does not leave the upstream socket open", async () => {
  const up = slowUpstream(200);
  const proxy = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    (request) => proxyWebSocket(request, { upstream: up.url, connectTimeoutMs: 1_000 }),
  );
  try {
    for (let i = 0; i < 5; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.addr.port });
      await conn.write(new TextEncoder().encode(RAW_HANDSHAKE));
      // Gone before the upstream answers (200 ms), so before the proxy could upgrade the client.
      setTimeout(() => conn.close(), 50);
    }
    await until("the upstream handshakes", () => up.sockets.opened === 5, 2_000);
    await until("the upstream sockets to close", () => up.sockets.open === 0, 2_000);
    assert.deepEqual(up.sockets.closeCodes, [1000, 1000, 1000, 1000, 1000]);
    // Neither process holds a connection for a client that is gone: a graceful shutdown waits for each one.
    await shutdownWithin(proxy, 2_000);
    await shutdownWithin(up.server, 2_000);
  } finally {
    // After a failure above: let the test report it rather than hang here.
    await shutdownWithin(proxy, 2_000).catch(() => {});
    await shutdownWithin(up.server, 2_000).catch(() => {});
  }
});

/** A client-side socket as `Deno.upgradeWebSocket` returns it for a connection that is already gone. */
class NeverOpeningSocket extends EventTarget {
  readyState: number = WebSocket.CONNECTING;
  binaryType = "blob";
  bufferedAmount = 0;
  onmessage: unknown = null;
  onclose: unknown = null;
  onerror: unknown = null;
  send(): void {}
  close(): void {
    this.readyState = WebSocket.CLOSING;
  }
}

Deno.test("an upgraded client socket that never opens gets its upstream closed after connectTimeoutMs", async () => {
  const up = slowUpstream(0);
  const client = new NeverOpeningSocket();
  const proxy = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    (request) =>
      proxyWebSocket(request, {
        upstream: up.url,
        connectTimeoutMs: 150,
        // The client leaves just as it is upgraded: its socket neither opens nor closes.
        upgrade: () => ({ socket: client as unknown as WebSocket, response: new Response(null, { status: 204 }) }),
      }),
  );
  try {
    const answer = await handshake(proxy.addr.port, "/ws/orders");
    await answer.body?.cancel();
    await until("the upstream handshake", () => up.sockets.opened === 1, 2_000);
    await until("the upstream socket to close", () => up.sockets.open === 0, 2_000);
    assert.deepEqual(up.sockets.closeCodes, [1000]);
    assert.equal(client.readyState, WebSocket.CLOSING, "the client socket is closed too");
  } finally {
    await proxy.shutdown();
    await up.server.shutdown();
  }
});

Deno.test("the client-open bound ends when the client opens: a session outlives connectTimeoutMs and keeps close codes", async () => {
  const up = slowUpstream(0);
  const proxy = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    (request) => proxyWebSocket(request, { upstream: up.url, connectTimeoutMs: 100 }),
  );
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.addr.port}/ws/orders`);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    await new Promise((resolve) => setTimeout(resolve, 250));
    const reply = next(ws, "message");
    ws.send("still here");
    assert.equal((await reply as MessageEvent).data, "echo:still here");
    ws.close(4002, "done");
    await until("the upstream socket to close", () => up.sockets.open === 0, 2_000);
    assert.deepEqual(up.sockets.closeCodes, [4002]);
  } finally {
    await proxy.shutdown();
    await up.server.shutdown();
  }
});
