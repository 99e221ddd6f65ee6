/**
 * Methods are case-sensitive (RFC 9110 section 9.1), but fetch() upper-cases `delete|get|head|options|post|put`
 * on the way to a region. The edge's rules compared the method as sent, so `post` skipped pre-auth and reached
 * the region as POST; `get` and TRACE made fetch throw, which read as "region unreachable" and took
 * the region out. The edge now answers 501 to every method it does not route, before any rule or region sees
 * it. Sent over a raw socket: fetch() and `new Request()` would normalise the method before the edge saw it.
 */
import assert from "node:assert/strict";
import { PROBLEM_CONTENT_TYPE } from "../shared/contracts/problem.ts";
import { TEST_AUDIENCE, TEST_ISSUER } from "../shared/testing/test_tokens.ts";
import { fakeRegion } from "./testing/fake_region.ts";
import { rawExchange } from "./testing/raw_http.ts";
import { createEdgeTestKey } from "./testing/test_keys.ts";
import { createEdge, EDGE_CACHE_DEFAULTS } from "./worker.ts";

async function setup() {
  const key = await createEdgeTestKey();
  const region = fakeRegion("east", { jwks: { keys: [key.jwk] } });
  region.state.versions.set("p1", 1);
  const edge = createEdge({
    regions: [region],
    cache: { ...EDGE_CACHE_DEFAULTS, followInvalidations: false },
    auth: { jwksUrls: [`${region.url}/.well-known/jwks.json`], issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, edge.app.fetch);
  return {
    key,
    region,
    edge,
    port: server.addr.port,
    close: async () => {
      await server.shutdown();
      await edge.stop();
      await region.close();
    },
  };
}

const MUTATION = JSON.stringify({ query: 'mutation { cancelOrder(id: "o1") { id } }' });

Deno.test("edge answers 501 problem+json to methods it does not route, lower-case spellings included, before any rule or region", async () => {
  const t = await setup();
  try {
    const cases: [head: string, body: string][] = [
      ["post /api/v1/products HTTP/1.1\r\nContent-Type: application/json", "{}"],
      ["delete /api/v1/products/p1 HTTP/1.1", ""],
      ["post /graphql HTTP/1.1\r\nContent-Type: application/json", MUTATION],
      ["patch /api/v1/products/p1 HTTP/1.1\r\nContent-Type: application/json", "{}"],
      ["get /api/v1/products/p1 HTTP/1.1", ""],
      ["get /api/v1/products/p1 HTTP/1.1", "{}"],
      ["post /api/v1/orders HTTP/1.1\r\nContent-Type: application/json", "{}"],
      ["PROPFIND /api/v1/products HTTP/1.1", ""],
      ["TRACE /api/v1/products HTTP/1.1", ""],
    ];
    for (const [head, body] of cases) {
      const answer = await rawExchange(t.port, head, body);
      const what = `${head.split("\r\n")[0]} with ${body.length} body bytes`;
      assert.equal(answer.status, 501, `${what}: ${answer.body}`);
      assert.equal(answer.headers.get("content-type"), PROBLEM_CONTENT_TYPE, what);
      assert.equal(JSON.parse(answer.body).code, "COMMON.METHOD_NOT_IMPLEMENTED", what);
      assert.ok(answer.headers.has("traceparent"), what);
    }
    assert.equal(t.region.state.hits, 0, "no refused method reached the region");
    assert.equal(t.edge.health()[0].healthy, true, "no refused method took the region out");
  } finally {
    await t.close();
  }
});

Deno.test("edge rules and the region see the same method for every method the edge routes", async () => {
  const t = await setup();
  try {
    // Without a token the edge's own rule answers: the region is not asked.
    const anonymous = await rawExchange(
      t.port,
      "POST /api/v1/products HTTP/1.1\r\nContent-Type: application/json",
      "{}",
    );
    assert.equal(anonymous.status, 401);
    assert.equal(t.region.state.hits, 0);
    const authorization = `Authorization: Bearer ${await t.key.sign("alice")}`;
    for (const method of ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
      const body = method === "GET" || method === "HEAD" || method === "OPTIONS" ? "" : "{}";
      const answer = await rawExchange(t.port, `${method} /api/v1/things HTTP/1.1\r\n${authorization}`, body);
      assert.equal(answer.status, 200, `${method}: ${answer.body}`);
      assert.equal(t.region.state.lastMethod, method);
    }
    const read = await rawExchange(t.port, "GET /api/v1/products/p1 HTTP/1.1");
    assert.equal(read.status, 200);
    assert.equal(read.headers.get("x-bv-cache"), "MISS", "the cache's rule saw GET");
  } finally {
    await t.close();
  }
});
