import assert from "node:assert/strict";
import { chunk, pause, startUpload } from "../http/upload_client_for_test.ts";
import { createServiceApp, markDraining } from "./service_app.ts";

Deno.test("/readyz is green only when every dependency check passes, and names the failing one", async () => {
  let kafkaUp = true;
  const app = createServiceApp({
    name: "test-east",
    readinessTimeoutMs: 100,
    checks: {
      postgres: () => Promise.resolve(),
      kafka: () => (kafkaUp ? Promise.resolve() : Promise.reject(new Error("connection refused"))),
      slow: () => new Promise(() => {}),
    },
  });
  const first = await app.request("/readyz");
  assert.equal(first.status, 503);
  const body = await first.json();
  assert.equal(body.checks.postgres.ok, true);
  assert.equal(body.checks.kafka.ok, true);
  assert.equal(body.checks.slow.ok, false);
  assert.match(body.checks.slow.error, /timed out after 100 ms/);

  const onlyKafka = createServiceApp({
    name: "test-east",
    checks: { kafka: () => (kafkaUp ? Promise.resolve() : Promise.reject(new Error("connection refused"))) },
  });
  assert.equal((await onlyKafka.request("/readyz")).status, 200);
  kafkaUp = false;
  const red = await onlyKafka.request("/readyz");
  assert.equal(red.status, 503);
  assert.equal((await red.json()).checks.kafka.error, "connection refused");
  kafkaUp = true;
  assert.equal((await onlyKafka.request("/readyz")).status, 200);
  markDraining(onlyKafka);
  assert.equal((await onlyKafka.request("/readyz")).status, 503, "a draining process is not ready");
  assert.equal((await onlyKafka.request("/healthz")).status, 200, "but still alive");
});

Deno.test("every response carries the correlation id; /metrics counts requests", async () => {
  const app = createServiceApp({ name: "test-east", checks: {} });
  app.get("/hello", (c) => c.json({ ok: true }));
  // Bodies are bounded as a handler reads them (a route that reads none is not held up by one).
  app.post("/hello", async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }));
  const response = await app.request("/hello", { headers: { "correlation-id": "abc-123" } });
  assert.equal(response.headers.get("correlation-id"), "abc-123");
  const metrics = await (await app.request("/metrics")).text();
  assert.match(metrics, /bv_http_requests_total\{method="GET",route="\/hello",status="200"\} \d+/);
  const tooBig = await app.request("/hello", { method: "POST", body: "x".repeat(1024 * 1024 + 1) });
  assert.equal(tooBig.status, 413);
  const problem = await tooBig.json();
  assert.equal(problem.code, "COMMON.PAYLOAD_TOO_LARGE");
  assert.match(problem.detail, /limited to 1048576 bytes/);
});

Deno.test("metrics label a made-up method OTHER, so clients cannot grow /metrics without bound", async () => {
  const app = createServiceApp({ name: "test-east", checks: {} });
  app.get("/hello", (c) => c.json({ ok: true }));
  const seriesOf = async () => (await (await app.request("/metrics")).text()).split("\n").length;
  // Every series this test can make, once: GET /metrics itself and the OTHER one.
  await app.request("/metrics");
  await app.request("/hello", { method: "BREW" });
  const before = await seriesOf();
  for (let i = 0; i < 200; i++) await app.request("/hello", { method: `MADE-UP-${i}` });
  const text = await (await app.request("/metrics")).text();
  assert.equal(text.split("\n").length, before, "200 new methods, not one new series");
  assert.doesNotMatch(text, /method="MADE-UP/);
  assert.doesNotMatch(text, /method="BREW"/);
  assert.match(text, /bv_http_requests_total\{method="OTHER",route="[^"]*",status="404"\} \d+/);
  await app.request("/hello", { method: "PATCH" });
  assert.match(await (await app.request("/metrics")).text(), /bv_http_requests_total\{method="PATCH",/);
});

/** The app on a real socket: the body a handler reads is the client's, paced by the test. */
function serveApp(app: ReturnType<typeof createServiceApp>) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
}

Deno.test("a handler's read of a stalled request body ends in 408 COMMON.REQUEST_TIMEOUT after bodyIdleTimeoutMs", async () => {
  const app = createServiceApp({ name: "test-east", checks: {}, bodyIdleTimeoutMs: 200 });
  app.post("/orders", async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }));
  const server = serveApp(app);
  const upload = await startUpload(server.addr.port, "POST /orders HTTP/1.1\r\ncontent-length: 100");
  try {
    const started = performance.now();
    await upload.send('{"sku":"SKU-1"');
    // Before: Hono's body limit did not apply to a Content-Length body and nothing bounded the handler's read.
    const answer = await upload.answer(1_500);
    assert.ok(answer, "answered within 1.5 s");
    assert.equal(answer.status, 408);
    assert.equal(JSON.parse(answer.body).code, "COMMON.REQUEST_TIMEOUT");
    assert.ok(answer.atMs - started >= 190, "not before the idle deadline");
  } finally {
    upload.close();
    await server.shutdown();
  }
});

Deno.test("a chunked body reaches the handler as it arrives and is refused with 413 stating bodyBytesMax past it", async () => {
  const app = createServiceApp({ name: "test-east", checks: {}, bodyBytesMax: 1_000 });
  let handlerStartedAfter: number | undefined;
  let sent = 0;
  app.post("/orders", async (c) => {
    handlerStartedAfter = sent;
    return c.json({ bytes: (await c.req.arrayBuffer()).byteLength });
  });
  const server = serveApp(app);
  const upload = await startUpload(server.addr.port, "POST /orders HTTP/1.1\r\ntransfer-encoding: chunked");
  try {
    const piece = "x".repeat(100);
    // Up to 5,000 bytes, 100 at a time: the answer must come once the 1,000 are passed, long before the end.
    while (sent < 5_000 && !upload.answered()) {
      if (!await upload.send(chunk(piece))) break;
      sent += piece.length;
      await pause(15);
    }
    const answer = await upload.answer(2_000);
    assert.ok(answer, "answered");
    assert.equal(answer.status, 413);
    const problem = JSON.parse(answer.body);
    assert.equal(problem.code, "COMMON.PAYLOAD_TOO_LARGE");
    assert.match(problem.detail, /limited to 1000 bytes/);
    assert.ok(sent < 5_000, `answered while the client was still sending (after ${sent} bytes)`);
    // Hono's body limit read the whole body into memory before any handler ran.
    assert.ok(handlerStartedAfter !== undefined && handlerStartedAfter < 1_000, "not buffered before the handler");
  } finally {
    upload.close();
    await server.shutdown();
  }
});
