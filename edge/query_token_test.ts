import assert from "node:assert/strict";
import { proxyWebSocket } from "../shared/http/websocket_proxy.ts";
import { TEST_AUDIENCE, TEST_ISSUER } from "../shared/testing/test_tokens.ts";
import { type FakeRegion, fakeRegion } from "./testing/fake_region.ts";
import { createEdgeTestKey, type EdgeTestKey, tamperedToken } from "./testing/test_keys.ts";
import { createEdge, type Edge } from "./worker.ts";

interface Rig {
  readonly key: EdgeTestKey;
  readonly region: FakeRegion;
  readonly edge: Edge;
  close(): Promise<void>;
}

async function rig(): Promise<Rig> {
  const key = await createEdgeTestKey();
  const region = fakeRegion("east", { jwks: { keys: [key.jwk] } });
  const edge = createEdge({
    regions: [region],
    auth: { jwksUrls: [`${region.url}/.well-known/jwks.json`], issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
    webSocket: (request, target) => proxyWebSocket(request, { ...target, connectTimeoutMs: 2_000 }),
  });
  return {
    key,
    region,
    edge,
    close: async () => {
      await edge.stop();
      await region.close();
    },
  };
}

async function problemOf(response: Response): Promise<{ status: number; code: string; detail: string }> {
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const body = await response.json();
  return { status: response.status, code: body.code, detail: body.detail };
}

Deno.test("edge accepts an access_token query parameter on browser stream paths, forwarded unchanged", async () => {
  const r = await rig();
  try {
    const token = await r.key.sign("alice");
    const response = await r.edge.app.request(`/sse/orders/o-1?access_token=${token}&after=3`);
    assert.equal(response.status, 200);
    await response.body?.cancel();
    assert.equal(r.region.state.hits, 1);
    // The region verifies the token again itself, so it must see the query exactly as the browser sent it.
    assert.equal(r.region.state.lastUrl, `/sse/orders/o-1?access_token=${token}&after=3`);
    assert.equal(r.region.state.lastHeaders?.get("x-bv-verified-sub"), "alice");
  } finally {
    await r.close();
  }
});

Deno.test("edge refuses a bad query token with 401 before any regional call, and lets the header win", async () => {
  const r = await rig();
  try {
    const valid = await r.key.sign("alice");
    const expired = await r.key.sign("alice", { issuedAgoSec: 3_600, ttlSec: 900 });
    for (
      const [token, code] of [
        [tamperedToken(valid), "AUTH.TOKEN_INVALID"],
        [expired, "AUTH.TOKEN_EXPIRED"],
        ["not-a-jwt", "AUTH.TOKEN_INVALID"],
      ]
    ) {
      const response = await r.edge.app.request(`/sse/orders/o-1?access_token=${token}`);
      assert.match(response.headers.get("www-authenticate") ?? "", /invalid_token/);
      assert.deepEqual((await problemOf(response)).code, code);
      assert.equal(response.status, 401);
    }
    const missing = await problemOf(await r.edge.app.request("/ws/orders?access_token="));
    assert.equal(missing.code, "AUTH.UNAUTHENTICATED");
    assert.match(missing.detail, /"access_token" query parameter/, "the answer says how a browser can send it");
    // Header and query both present: the header decides, as at the regions.
    const badHeader = await r.edge.app.request(`/sse/orders/o-1?access_token=${valid}`, {
      headers: { authorization: `Bearer ${tamperedToken(valid)}` },
    });
    assert.equal((await problemOf(badHeader)).code, "AUTH.TOKEN_INVALID");
    assert.equal(r.region.state.hits, 0, "no refused request may reach the region");
    const goodHeader = await r.edge.app.request(`/sse/orders/o-1?access_token=${tamperedToken(valid)}`, {
      headers: { authorization: `Bearer ${valid}` },
    });
    assert.equal(goodHeader.status, 200);
    await goodHeader.body?.cancel();
    assert.equal(r.region.state.hits, 1);
  } finally {
    await r.close();
  }
});

Deno.test("edge ignores access_token on every other path: it is no credential there", async () => {
  const r = await rig();
  r.region.state.versions.set("p1", 1);
  try {
    const valid = await r.key.sign("alice");
    for (const path of ["/api/v1/orders", "/api/v1/carts/c1", "/api/v1/ops/status", "/api/v1/webhooks/subscriptions"]) {
      const response = await r.edge.app.request(`${path}?access_token=${valid}`);
      assert.equal((await problemOf(response)).code, "AUTH.UNAUTHENTICATED", path);
      assert.equal(response.status, 401);
    }
    const mutation = await r.edge.app.request(`/api/v1/orders?access_token=${valid}`, { method: "POST", body: "{}" });
    assert.equal((await problemOf(mutation)).code, "AUTH.UNAUTHENTICATED");
    assert.equal(r.region.state.hits, 0);
    // A public read with a junk access_token is not refused: the parameter is not read there at all.
    const read = await r.edge.app.request("/api/v1/products/p1?access_token=junk");
    assert.equal(read.status, 200);
    assert.equal((await read.json()).id, "p1");
  } finally {
    await r.close();
  }
});

Deno.test("a browser WebSocket authenticates with access_token at the edge; the region sees the same URL", async () => {
  const r = await rig();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, r.edge.app.fetch);
  try {
    const token = await r.key.sign("alice");
    const socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}/ws/echo?access_token=${token}`);
    const echoed = new Promise<string>((resolve, reject) => {
      socket.onopen = () => socket.send("hi");
      socket.onmessage = (event) => resolve(String(event.data));
      socket.onerror = (event) => reject(new Error((event as ErrorEvent).message));
    });
    assert.equal(await echoed, "east:hi");
    assert.equal(r.region.state.wsLastUrl, `/ws/echo?access_token=${token}`);
    assert.equal(r.region.state.wsLastHeaders?.get("x-bv-verified-sub"), "alice");
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.close();
    await closed;
    // A bad one is refused before any upgrade or regional handshake.
    const refused = await fetch(`http://127.0.0.1:${server.addr.port}/ws/echo?access_token=${tamperedToken(token)}`, {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" },
    });
    assert.equal((await problemOf(refused)).code, "AUTH.TOKEN_INVALID");
    assert.equal(r.region.state.wsConnects, 1);
  } finally {
    await server.shutdown();
    await r.close();
  }
});

Deno.test("a query token never shows in the edge's answers, /metrics or /readyz when its region is down", async () => {
  const r = await rig();
  let regionUp = true;
  try {
    const token = await r.key.sign("alice");
    // Keys are loaded while the region is up; then it goes away with the edge still thinking it healthy.
    const first = await r.edge.app.request(`/sse/orders/o-1?access_token=${token}`);
    await first.body?.cancel();
    await r.region.close();
    regionUp = false;
    const failed = await r.edge.app.request(`/sse/orders/o-2?access_token=${token}`);
    assert.equal(failed.status, 503);
    const texts = [
      await failed.text(),
      [...failed.headers].join("\n"),
      await (await r.edge.app.request("/metrics")).text(),
      await (await r.edge.app.request("/readyz")).text(),
    ];
    assert.match(texts[2], /bv_edge_failovers_total|bv_edge_requests_total/, "the metrics were read");
    for (const text of texts) {
      assert.ok(!text.includes(token.slice(-20)), `the token leaked into: ${text.slice(0, 200)}`);
      assert.ok(!text.includes("access_token"), `the query leaked into: ${text.slice(0, 200)}`);
    }
  } finally {
    await (regionUp ? r.close() : r.edge.stop());
  }
});
