import assert from "node:assert/strict";
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
  const response = await app.request("/hello", { headers: { "correlation-id": "abc-123" } });
  assert.equal(response.headers.get("correlation-id"), "abc-123");
  const metrics = await (await app.request("/metrics")).text();
  assert.match(metrics, /bv_http_requests_total\{method="GET",route="\/hello",status="200"\} \d+/);
  const tooBig = await app.request("/hello", { method: "POST", body: "x".repeat(1024 * 1024 + 1) });
  assert.equal(tooBig.status, 413);
  assert.equal((await tooBig.json()).code, "COMMON.PAYLOAD_TOO_LARGE");
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
