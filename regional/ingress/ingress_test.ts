import assert from "node:assert/strict";
import { type ServiceName, SERVICES } from "../../shared/config/config.ts";
import { createIngressApp } from "./ingress.ts";

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
    return Response.json({ service: name, path: url.pathname, traceparent: request.headers.get("traceparent") });
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
      assert.match(products.traceparent, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
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
    } finally {
      await ingress.shutdown();
      await Promise.all(servers.map(([, server]) => server.shutdown()));
    }
  },
});
