import assert from "node:assert/strict";
import { type ServiceName, SERVICES } from "../../shared/config/config.ts";
import { createIngressApp } from "./ingress.ts";
import { createLifecycle } from "../../shared/runtime/mod.ts";
import { readToEnd } from "../../shared/testing/read_to_end.ts";

/** A stand-in deployable: answers HTTP with its name and echoes WebSocket frames. */
function fakeService(name: string) {
  return Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    const url = new URL(request.url);
    if (url.pathname === "/readyz") return Response.json({ ready: true });
    if (request.headers.get("upgrade") === "websocket") {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => socket.send(`${name}:${event.data}`);
      return response;
    }
    return Response.json({ service: name, path: url.pathname, headers: Object.fromEntries(request.headers) });
  });
}

Deno.test({
  name: "ingress routes HTTP and WebSocket by path to the owning deployable and carries the trace",
  sanitizeResources: false,
  fn: async () => {
    const servers = SERVICES.map((s) => [s, fakeService(s)] as const);
    const serviceUrls = Object.fromEntries(
      servers.map(([s, server]) => [s, `http://127.0.0.1:${server.addr.port}`]),
    ) as Record<ServiceName, string>;
    const ingress = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen: () => {} },
      createIngressApp({ name: "ingress-test", serviceUrls, upstreamTimeoutMs: 1_000 }).fetch,
    );
    const base = `127.0.0.1:${ingress.addr.port}`;
    try {
      const products = await (await fetch(`http://${base}/api/v1/products/1`, {
        headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      })).json();
      assert.equal(products.service, "ecommerce");
      assert.match(products.headers.traceparent, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
      assert.equal((await (await fetch(`http://${base}/api/v1/auth/login`)).json()).service, "security");
      const unknown = await fetch(`http://${base}/nowhere`);
      assert.equal(unknown.status, 404);
      assert.equal((await unknown.json()).code, "COMMON.NOT_FOUND");
      assert.equal((await fetch(`http://${base}/readyz`)).status, 200);

      const ws = new WebSocket(`ws://${base}/ws/chat`);
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = reject;
      });
      const reply = new Promise<string>((resolve) => (ws.onmessage = (e) => resolve(e.data)));
      ws.send("hi");
      assert.equal(await reply, "chat:hi");
      const closed = new Promise((resolve) => (ws.onclose = resolve));
      ws.close();
      await closed;

      // Public (regional/ecommerce/flash_sales/README.md), and the edge sends every /ws/ path to the ingress.
      const sales = new WebSocket(`ws://${base}/ws/flash-sales`);
      await new Promise((resolve, reject) => {
        sales.onopen = resolve;
        sales.onerror = reject;
      });
      const sale = new Promise<string>((resolve) => (sales.onmessage = (e) => resolve(e.data)));
      sales.send("hi");
      assert.equal(await sale, "ecommerce:hi");
      const salesClosed = new Promise((resolve) => (sales.onclose = resolve));
      sales.close();
      await salesClosed;
    } finally {
      await ingress.shutdown();
      await Promise.all(servers.map(([, server]) => server.shutdown()));
    }
  },
});

Deno.test({
  name: "ingress drops a client's identity headers, passes the edge's and a forwarding region's, appends the peer",
  sanitizeResources: false,
  fn: async () => {
    const servers = SERVICES.map((s) => [s, fakeService(s)] as const);
    const serviceUrls = Object.fromEntries(
      servers.map(([s, server]) => [s, `http://127.0.0.1:${server.addr.port}`]),
    ) as Record<ServiceName, string>;
    const ingress = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen: () => {} },
      createIngressApp({ name: "ingress-test", serviceUrls, upstreamTimeoutMs: 1_000 }).fetch,
    );
    try {
      const response = await fetch(`http://127.0.0.1:${ingress.addr.port}/api/v1/orders`, {
        method: "POST",
        body: "{}",
        headers: {
          "x-bv-user-id": "mallory",
          "x-bv-principal": "admin",
          "x-bv-verified-email": "mallory@example.test",
          "x-bv-verified-roles": "ADMIN",
          // What a replica's write forwarding sends to the writer region's ingress (forward_writes.ts) and what
          // the edge adds: this door cannot tell them from a client's, so they pass (internal_headers.ts).
          "x-bv-forwarded-from-region": "west",
          "x-bv-verified-sub": "alice",
          "x-forwarded-for": "203.0.113.7",
        },
      });
      const seen = (await response.json()).headers;
      assert.equal(seen["x-bv-user-id"], undefined);
      assert.equal(seen["x-bv-principal"], undefined);
      assert.equal(seen["x-bv-verified-email"], undefined);
      assert.equal(seen["x-bv-verified-roles"], undefined);
      assert.equal(seen["x-bv-forwarded-from-region"], "west");
      assert.equal(seen["x-bv-verified-sub"], "alice");
      assert.equal(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    } finally {
      await ingress.shutdown();
      await Promise.all(servers.map(([, server]) => server.shutdown()));
    }
  },
});

Deno.test("stopping the ingress ends a proxied event stream with a last comment, so its drain completes", async () => {
  const encoder = new TextEncoder();
  let upstreamCancelled = false;
  const upstream = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(": connected\n\n"));
      },
      cancel() {
        upstreamCancelled = true;
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  const serviceUrls = Object.fromEntries(
    SERVICES.map((s) => [s, `http://127.0.0.1:${upstream.addr.port}`]),
  ) as Record<ServiceName, string>;
  const graceMs = 2_000;
  const lifecycle = createLifecycle({ graceMs, handleSignals: false });
  const app = createIngressApp({ name: "ingress-test", serviceUrls, upstreamTimeoutMs: 1_000 });
  const { port } = lifecycle.serve(app, { port: 0, hostname: "127.0.0.1", name: "ingress-test" });
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    const response = await fetch(`http://127.0.0.1:${port}/api/v1/ecommerce/invalidations`);
    reader = response.body!.getReader();
    const decoder = new TextDecoder();
    assert.equal(decoder.decode((await reader.read()).value), ": connected\n\n");
    const started = performance.now();
    const outcome = await lifecycle.stop("test");
    const elapsedMs = performance.now() - started;
    assert.equal(outcome.serversDrained, true, JSON.stringify(outcome));
    assert.equal(outcome.completed, true);
    assert.ok(elapsedMs < graceMs / 2, `stop() took ${elapsedMs} ms`);
    // Bounded: on a stream that never ends this fails instead of hanging the suite.
    const rest = await readToEnd(reader, 2_000);
    assert.match(rest, /^: shutting down; reconnect/);
    assert.equal(upstreamCancelled, true, "the upstream stream is released");
  } finally {
    // On a failure the streams may still be open: cancel the client's, and bound the upstream's shutdown, so a
    // broken ingress fails this test instead of hanging the suite.
    await reader?.cancel().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([upstream.shutdown(), new Promise((resolve) => timer = setTimeout(resolve, 2_000))]);
    clearTimeout(timer);
  }
});
