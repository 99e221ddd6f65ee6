/**
 * The ingress and a client's upload over real sockets: a stalled body, a slow but steady one, a chunked one over the
 * limit. Deadlines are configured short; nothing sleeps longer than a trickle step.
 */
import assert from "node:assert/strict";
import { type ServiceName, SERVICES } from "../../shared/config/config.ts";
import { PROXY_ERROR_HEADER } from "../../shared/http/mod.ts";
import { chunk, pause, startUpload } from "../../shared/http/upload_client_for_test.ts";
import { createIngressApp, type IngressOptions } from "./ingress.ts";

/** Stand-in deployables that read each body to its end and answer at once; what they saw is recorded. */
function fakeServices() {
  let heads = 0;
  const bodies: string[] = [];
  let failedReads = 0;
  const servers = SERVICES.map((service) =>
    Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (request) => {
      if (new URL(request.url).pathname === "/readyz") return Response.json({ ready: true });
      heads++;
      try {
        const body = await request.text();
        bodies.push(body);
        return Response.json({ service, bytes: body.length });
      } catch {
        failedReads++;
        return new Response(null, { status: 499 });
      }
    })
  );
  const serviceUrls = Object.fromEntries(
    servers.map((server, i) => [SERVICES[i], `http://127.0.0.1:${server.addr.port}`]),
  ) as Record<ServiceName, string>;
  return {
    serviceUrls,
    heads: () => heads,
    bodies,
    failedReads: () => failedReads,
    shutdown: () => Promise.all(servers.map((server) => server.shutdown())),
  };
}

async function withIngress(
  options: Omit<IngressOptions, "name" | "serviceUrls">,
  run: (port: number, services: ReturnType<typeof fakeServices>) => Promise<void>,
): Promise<void> {
  const services = fakeServices();
  const ingress = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    createIngressApp({ name: "ingress-test", serviceUrls: services.serviceUrls, ...options }).fetch,
  );
  try {
    await run(ingress.addr.port, services);
  } finally {
    await ingress.shutdown();
    await services.shutdown();
  }
}

Deno.test("ingress answers a stalled request body 408 after bodyIdleTimeoutMs, without blaming the deployable", async () => {
  await withIngress({ upstreamTimeoutMs: 3_000, bodyIdleTimeoutMs: 200 }, async (port, services) => {
    const upload = await startUpload(port, "POST /api/v1/orders HTTP/1.1\r\ncontent-length: 100");
    try {
      const started = performance.now();
      await upload.send('{"sku":"SKU-1"');
      // Before: 504 with the proxy's marker after the 3 s upstream budget, so the edge saw a slow region.
      const answer = await upload.answer(1_500);
      assert.ok(answer, "answered within 1.5 s");
      assert.equal(answer.status, 408);
      assert.equal(answer.headers.get(PROXY_ERROR_HEADER), null, "the deployable is not to blame");
      assert.equal(JSON.parse(answer.body).code, "COMMON.REQUEST_TIMEOUT");
      assert.ok(answer.atMs - started >= 190, "not before the idle deadline");
      for (let i = 0; i < 100 && services.heads() > services.failedReads(); i++) await pause(10);
      assert.deepEqual(services.bodies, [], "the deployable got no whole request (an aborted one at most)");
    } finally {
      upload.close();
    }
  });
});

Deno.test("ingress forwards a slow but steady upload that takes longer than upstreamTimeoutMs", async () => {
  await withIngress({ upstreamTimeoutMs: 150, bodyIdleTimeoutMs: 1_000 }, async (port, services) => {
    const upload = await startUpload(port, "POST /api/v1/orders HTTP/1.1\r\ncontent-length: 10");
    try {
      // One byte every 60 ms: 600 ms of upload against a 150 ms budget for the deployable.
      for (const byte of "0123456789") {
        if (!await upload.send(byte)) break; // Answered already: the status below says how.
        await pause(60);
      }
      const answer = await upload.answer(2_000);
      assert.ok(answer, "answered");
      assert.equal(answer.status, 200, answer.body);
      assert.equal(answer.headers.get(PROXY_ERROR_HEADER), null);
      assert.deepEqual(services.bodies, ["0123456789"]);
    } finally {
      upload.close();
    }
  });
});

Deno.test("ingress streams a chunked upload to the deployable as it arrives and refuses it with 413 past bodyBytesMax", async () => {
  await withIngress({ upstreamTimeoutMs: 2_000, bodyBytesMax: 1_000 }, async (port, services) => {
    const upload = await startUpload(port, "POST /api/v1/orders HTTP/1.1\r\ntransfer-encoding: chunked");
    try {
      const piece = "x".repeat(100);
      let sent = 0;
      let deployableSawItAfter: number | undefined;
      // Up to 5,000 bytes, 100 at a time; the answer must come once the 1,000 are passed, long before the end.
      while (sent < 5_000 && !upload.answered()) {
        if (!await upload.send(chunk(piece))) break;
        sent += piece.length;
        await pause(15);
        if (deployableSawItAfter === undefined && services.heads() > 0) deployableSawItAfter = sent;
      }
      const answer = await upload.answer(2_000);
      assert.ok(answer, "answered");
      assert.equal(answer.status, 413);
      assert.equal(answer.headers.get(PROXY_ERROR_HEADER), null);
      const problem = JSON.parse(answer.body);
      assert.equal(problem.code, "COMMON.PAYLOAD_TOO_LARGE");
      assert.match(problem.detail, /limited to 1000 bytes/);
      assert.ok(sent < 5_000, `answered while the client was still sending (after ${sent} bytes)`);
      // Before: the service shell read the whole chunked body into memory before the proxy step ran.
      assert.ok(
        deployableSawItAfter !== undefined && deployableSawItAfter <= 1_000,
        `streamed on before the bound was reached (the deployable saw it after ${deployableSawItAfter} bytes)`,
      );
    } finally {
      upload.close();
    }
  });
});
