/**
 * A body that breaks off mid-way is answered problem+json with a stable code, not Hono's plain-text 500: a
 * client that stops uploading a GraphQL POST (which the edge reads itself to classify it) is 400
 * `COMMON.REQUEST_INCOMPLETE`, as the proxy answers it; a region that resets or closes its connection in the
 * middle of a cache fill's body is 502 `COMMON.UPSTREAM_INCOMPLETE`. Over real sockets: fetch() cannot cut a
 * body short. A GraphQL body over its bound is 413 with `Connection: close` (its rest was never read).
 */
import assert from "node:assert/strict";
import { PROBLEM_CONTENT_TYPE } from "../shared/contracts/problem.ts";
import type { EdgeLog } from "./edge_options.ts";
import { eventually, fakeRegion } from "./testing/fake_region.ts";
import { abandonUpload, brokenRegion, rawExchange } from "./testing/raw_http.ts";
import { createEdge, EDGE_CACHE_DEFAULTS, type EdgeOptions } from "./worker.ts";

/** The edge on a real server; `answers` holds the status and body the edge gave each request (read or not). */
function serveEdge(options: EdgeOptions) {
  const logged: string[] = [];
  const log: EdgeLog = { error: (msg, fields) => logged.push(`${msg} ${JSON.stringify(fields)}`) };
  const edge = createEdge({ ...options, log });
  const answers: { status: number; contentType: string | null; body: string }[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (request, info) => {
    const response = await edge.app.fetch(request, info);
    const body = await response.clone().text();
    answers.push({ status: response.status, contentType: response.headers.get("content-type"), body });
    return response;
  });
  return {
    edge,
    port: server.addr.port,
    answers,
    logged,
    close: async () => {
      await server.shutdown();
      await edge.stop();
    },
  };
}

const GRAPHQL_HEAD = "POST /graphql HTTP/1.1\r\nContent-Type: application/json";
const QUERY_START = '{"query":"{ product(id: \\"p1\\") { id version } }","variab';

Deno.test("a client that stops mid-way through a GraphQL POST body gets 400 COMMON.REQUEST_INCOMPLETE, not a plain 500", async () => {
  const region = fakeRegion("east");
  const served = serveEdge({ regions: [region] });
  try {
    // The client half-closes after part of its body: it can still read the answer.
    const answer = await rawExchange(served.port, GRAPHQL_HEAD, QUERY_START, { cutBody: 200 });
    assert.equal(answer.status, 400, answer.body);
    assert.equal(answer.headers.get("content-type"), PROBLEM_CONTENT_TYPE);
    assert.equal(JSON.parse(answer.body).code, "COMMON.REQUEST_INCOMPLETE");
    assert.match(answer.headers.get("traceparent") ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // The client closes its socket outright: nobody reads the answer, but it is still the same problem.
    await abandonUpload(served.port, GRAPHQL_HEAD, QUERY_START, 200);
    await eventually("the edge's answer to the abandoned upload", () => served.answers.length === 2);
    assert.equal(served.answers[1].status, 400, served.answers[1].body);
    assert.equal(served.answers[1].contentType, PROBLEM_CONTENT_TYPE);
    assert.equal(JSON.parse(served.answers[1].body).code, "COMMON.REQUEST_INCOMPLETE");
    assert.equal(region.state.hits, 0, "nothing reached the region");
    assert.deepEqual(served.logged, [], "a client going away is not an edge failure");
  } finally {
    await served.close();
    await region.close();
  }
});

for (const mode of ["reset", "close"] as const) {
  Deno.test(`a cache fill whose region ${mode}s the connection mid-body gets 502 COMMON.UPSTREAM_INCOMPLETE; nothing is stored`, async () => {
    const region = await brokenRegion(mode);
    const served = serveEdge({
      regions: [{ name: "east", url: region.url }],
      cache: { ...EDGE_CACHE_DEFAULTS, followInvalidations: false },
    });
    try {
      for (let attempt = 1; attempt <= 2; attempt++) {
        const answer = await rawExchange(served.port, "GET /api/v1/products/p1 HTTP/1.1");
        assert.equal(answer.status, 502, answer.body);
        assert.equal(answer.headers.get("content-type"), PROBLEM_CONTENT_TYPE);
        assert.equal(JSON.parse(answer.body).code, "COMMON.UPSTREAM_INCOMPLETE");
        assert.equal(answer.headers.get("x-bv-cache"), "BYPASS");
        assert.ok(answer.headers.has("correlation-id"));
        assert.equal(region.connections(), attempt, "each read went to the region: the broken answer was not kept");
      }
      // A GraphQL query is filled the same way (its body read by the edge, forwarded as read).
      const query = await rawExchange(served.port, GRAPHQL_HEAD, '{"query":"{ product(id: \\"p1\\") { id } }"}');
      assert.equal(query.status, 502, query.body);
      assert.equal(JSON.parse(query.body).code, "COMMON.UPSTREAM_INCOMPLETE");
      assert.deepEqual(served.logged, []);
    } finally {
      await served.close();
      await region.close();
    }
  });
}

Deno.test("a GraphQL POST body over 64 KiB is 413 with Connection: close, declared or streamed: its unread rest is no next request", async () => {
  const region = fakeRegion("east");
  const edge = createEdge({ regions: [region] });
  const query = new TextEncoder().encode(
    `{"query":"{ product(id: \\"p1\\") { id } }","pad":"${"x".repeat(70 * 1024)}"}`,
  );
  const post = (headers: Record<string, string>, body: BodyInit) =>
    new Request("http://edge.test/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
      duplex: "half",
    } as RequestInit);
  const requests = {
    declared: () => post({ "content-length": String(query.byteLength) }, query),
    streamed: () =>
      post(
        {},
        new ReadableStream<Uint8Array>({
          start(controller) {
            for (let at = 0; at < query.byteLength; at += 8192) controller.enqueue(query.slice(at, at + 8192));
            controller.close();
          },
        }),
      ),
  };
  try {
    for (const [how, request] of Object.entries(requests)) {
      const response = await edge.app.request(request());
      assert.equal(response.status, 413, how);
      assert.equal((await response.json()).code, "COMMON.PAYLOAD_TOO_LARGE", how);
      assert.equal(response.headers.get("connection"), "close", how);
    }
    assert.equal(region.state.hits, 0, "nothing reached the region");
  } finally {
    await edge.stop();
    await region.close();
  }
});
