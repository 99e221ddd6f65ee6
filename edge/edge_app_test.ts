/**
 * A failure nothing else answered is a problem+json 500 `COMMON.INTERNAL` carrying the request's trace, and one
 * log line with the error and its stack; the answer says nothing of the error, and the log has no query (it
 * may hold a token). Before, Hono answered `Internal Server Error` in plain text.
 */
import assert from "node:assert/strict";
import { PROBLEM_CONTENT_TYPE } from "../shared/contracts/problem.ts";
import { createEdgeApp } from "./edge_app.ts";
import type { EdgeLog } from "./edge_options.ts";
import { fakeRegion } from "./testing/fake_region.ts";
import { rawExchange } from "./testing/raw_http.ts";
import { createEdge, type EdgeOptions } from "./worker.ts";

const SECRET = "secret-detail-db.internal:5432";
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";

function recordingLog(): { log: EdgeLog; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: { error: (msg, fields) => lines.push({ msg, ...fields }) }, lines };
}

async function withEdge(options: Omit<EdgeOptions, "regions">, run: (port: number) => Promise<void>) {
  const region = fakeRegion("east");
  const edge = createEdge({ regions: [region], ...options });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, edge.app.fetch);
  try {
    await run(server.addr.port);
  } finally {
    await server.shutdown();
    await edge.stop();
    await region.close();
  }
}

function assertInternalProblem(response: { status: number; headers: Headers; body: string }) {
  assert.equal(response.status, 500, response.body);
  assert.equal(response.headers.get("content-type"), PROBLEM_CONTENT_TYPE);
  const problem = JSON.parse(response.body);
  assert.equal(problem.code, "COMMON.INTERNAL");
  assert.ok(!response.body.includes(SECRET), "the error's message stays out of the answer");
  assert.ok(!/\bat \S+:\d+/.test(response.body), "no stack frame in the answer");
}

Deno.test("an error thrown in the pipeline is a 500 COMMON.INTERNAL problem with the request's trace, logged once", async () => {
  const { log, lines } = recordingLog();
  const clientIdOf = () => {
    throw new Error(SECRET);
  };
  const rate = { ratePerSec: 100, burst: 100 };
  await withEdge({ log, rateLimit: { perClient: rate, perSubject: rate, clientIdOf } }, async (port) => {
    const response = await fetch(`http://127.0.0.1:${port}/sse/orders/o1?access_token=tok-in-query`, {
      headers: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01`, "correlation-id": "corr-42" },
    });
    assertInternalProblem({ status: response.status, headers: response.headers, body: await response.text() });
    assert.match(response.headers.get("traceparent") ?? "", new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
    assert.equal(response.headers.get("correlation-id"), "corr-42");
  });
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.equal(line.traceId, TRACE_ID);
  assert.equal(line.correlationId, "corr-42");
  assert.equal(line.path, "/sse/orders/o1");
  assert.match(String(line.error), new RegExp(SECRET));
  assert.match(String(line.stack), /clientIdOf/);
  assert.ok(!JSON.stringify(line).includes("tok-in-query"), "the query (a token) is not logged");
});

Deno.test("a rejection with a non-Error value is answered the same way, not by the server's plain-text 500", async () => {
  const { log, lines } = recordingLog();
  // A connector that rejects with a string: Hono would pass it on to Deno's server rather than to onError.
  const webSocket = () => Promise.reject(SECRET);
  await withEdge({ log, webSocket }, async (port) => {
    const answer = await rawExchange(
      port,
      "GET /ws/echo HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    );
    assertInternalProblem(answer);
    assert.ok(answer.headers.has("correlation-id"));
  });
  assert.equal(lines.length, 1);
  assert.match(String(lines[0].error), new RegExp(SECRET));
});

Deno.test("a failure in the edge's own routes (/readyz) is a problem answer too", async () => {
  const { log, lines } = recordingLog();
  const app = createEdgeApp({
    health: () => {
      throw new Error(SECRET);
    },
    metricsText: () => "",
    handle: () => new Response("unused"),
    log,
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/readyz`);
    assertInternalProblem({ status: response.status, headers: response.headers, body: await response.text() });
    assert.ok(response.headers.has("traceparent"));
  } finally {
    await server.shutdown();
  }
  assert.equal(lines.length, 1);
  assert.equal(lines[0].path, "/readyz");
});
