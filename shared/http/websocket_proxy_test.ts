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
