import assert from "node:assert/strict";
import { TEST_AUDIENCE, TEST_ISSUER } from "../shared/testing/test_tokens.ts";
import { fakeRegion } from "./testing/fake_region.ts";
import { createEdgeTestKey, tamperedToken, unsignedToken } from "./testing/test_keys.ts";
import { createEdge } from "./worker.ts";

async function setup(options?: { readonly jwksCooldownMs?: number }) {
  const key = await createEdgeTestKey();
  const region = fakeRegion("east", { jwks: { keys: [key.jwk] } });
  const edge = createEdge({
    regions: [region],
    healthTimeoutMs: 500,
    auth: {
      jwksUrls: [`${region.url}/.well-known/jwks.json`],
      issuer: TEST_ISSUER,
      audience: TEST_AUDIENCE,
      jwksCooldownMs: options?.jwksCooldownMs,
    },
  });
  return { key, region, edge };
}

function bearer(token: string, init?: RequestInit): RequestInit {
  return { ...init, headers: { ...init?.headers as Record<string, string>, authorization: `Bearer ${token}` } };
}

const placeOrder = {
  method: "POST",
  body: JSON.stringify({ items: [] }),
  headers: { "content-type": "application/json" },
};

Deno.test("edge answers 401 problem+json before any regional call for each kind of bad token", async () => {
  const { key, region, edge } = await setup();
  try {
    const valid = await key.sign("alice");
    const stranger = await createEdgeTestKey();
    const cases: { name: string; token: string; code: string }[] = [
      {
        name: "expired",
        token: await key.sign("alice", { issuedAgoSec: 3_600, ttlSec: 900 }),
        code: "AUTH.TOKEN_EXPIRED",
      },
      { name: "unknown kid", token: await stranger.sign("alice"), code: "AUTH.TOKEN_INVALID" },
      { name: "alg none", token: unsignedToken(key.kid, "alice"), code: "AUTH.TOKEN_INVALID" },
      {
        name: "wrong audience",
        token: await key.sign("alice", { claims: { aud: "someone-else" } }),
        code: "AUTH.TOKEN_INVALID",
      },
      { name: "tampered payload", token: tamperedToken(valid), code: "AUTH.TOKEN_INVALID" },
      { name: "not a bearer token", token: "", code: "AUTH.TOKEN_INVALID" },
    ];
    for (const { name, token, code } of cases) {
      for (const [path, init] of [["/api/v1/orders", placeOrder], ["/api/v1/products/p1", {}]] as const) {
        const response = await edge.app.request(
          path,
          token === "" ? { ...init, headers: { authorization: "Basic YWxpY2U6cHc=" } } : bearer(token, init),
        );
        assert.equal(response.status, 401, `${name} on ${path}`);
        assert.equal(response.headers.get("content-type"), "application/problem+json", name);
        assert.match(response.headers.get("www-authenticate") ?? "", /invalid_token/, name);
        assert.equal((await response.json()).code, code, `${name} on ${path}`);
      }
    }
    assert.equal(region.state.hits, 0, "no bad token may reach the region");
    // The same edge lets a valid token through, so the refusals above are about the tokens.
    const ok = await edge.app.request("/api/v1/orders", bearer(valid, placeOrder));
    assert.equal(ok.status, 200);
    assert.equal(region.state.hits, 1);
  } finally {
    await edge.stop();
    await region.close();
  }
});

Deno.test("refresh and logout reach the region with an expired or bad access token attached", async () => {
  const { key, region, edge } = await setup();
  try {
    const expired = await key.sign("alice", { issuedAgoSec: 3_600, ttlSec: 900 });
    for (const path of ["/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/auth/login"]) {
      for (const token of [expired, "not-a-jwt"]) {
        const response = await edge.app.request(path, bearer(token, { method: "POST", body: "{}" }));
        assert.equal(response.status, 200, `${path} with ${token === expired ? "an expired" : "a bad"} token`);
        await response.body?.cancel();
      }
    }
    assert.equal(region.state.hits, 6);
    // Only these: an expired token on any other mutation is still refused at the edge.
    const refused = await edge.app.request("/api/v1/orders", bearer(expired, placeOrder));
    assert.equal(refused.status, 401);
    assert.equal((await refused.json()).code, "AUTH.TOKEN_EXPIRED");
    assert.equal(region.state.hits, 6);
  } finally {
    await edge.stop();
    await region.close();
  }
});

Deno.test("edge requires a token for mutations and private reads but lets public reads and sign-in through", async () => {
  const { region, edge } = await setup();
  region.state.versions.set("p1", 1);
  try {
    const refused: [string, RequestInit][] = [
      ["/api/v1/orders", placeOrder],
      ["/api/v1/orders/o-1", {}],
      ["/api/v1/carts/mine", {}],
      ["/api/v1/webhooks", {}],
      ["/api/v1/ops/status", {}],
      ["/api/v1/analytics/sales", {}],
      ["/sse/orders/o-1", {}],
      ["/api/v1/products/p1", { method: "PUT", body: "{}" }],
      ["/graphql", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: "mutation { cancelOrder(id: 1) { id } }" }),
      }],
    ];
    for (const [path, init] of refused) {
      const response = await edge.app.request(path, init);
      assert.equal(response.status, 401, `${init.method ?? "GET"} ${path}`);
      assert.equal((await response.json()).code, "AUTH.UNAUTHENTICATED");
    }
    assert.equal(region.state.hits, 0);
    const allowed: [string, RequestInit][] = [
      ["/api/v1/products/p1", {}],
      ["/api/v1/inventory/p1", {}],
      ["/api/v1/auth/login", { method: "POST", body: "{}" }],
      ["/api/v1/auth/signup", { method: "POST", body: "{}" }],
      ["/api/v1/auth/refresh", { method: "POST", body: "{}" }],
      ["/api/v1/auth/logout", { method: "POST", body: "{}" }],
      ["/sse/flash-sales", {}],
      ["/api/v1/orders", { method: "OPTIONS" }],
      ["/graphql", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: "query P($id: ID!) { product(id: $id) { id } }", variables: { id: "p1" } }),
      }],
    ];
    for (const [path, init] of allowed) {
      const response = await edge.app.request(path, init);
      assert.equal(response.status, 200, `${init.method ?? "GET"} ${path}`);
      await response.body?.cancel();
    }
    assert.equal(region.state.hits, allowed.length);
  } finally {
    await edge.stop();
    await region.close();
  }
});

Deno.test("edge names the verified subject for the region and drops identity headers a client sent", async () => {
  const { key, region, edge } = await setup();
  try {
    const forged = { "x-bv-verified-sub": "mallory", "x-bv-user-id": "mallory" };
    const anonymous = await edge.app.request("/api/v1/products/p1", { headers: forged });
    await anonymous.body?.cancel();
    assert.equal(region.state.lastHeaders?.get("x-bv-verified-sub"), null);
    assert.equal(region.state.lastHeaders?.get("x-bv-user-id"), null);
    const token = await key.sign("alice");
    const signedIn = await edge.app.request("/api/v1/orders", bearer(token, { ...placeOrder, headers: forged }));
    assert.equal(signedIn.status, 200);
    assert.deepEqual(await signedIn.json(), { region: "east", path: "/api/v1/orders", method: "POST" });
    assert.equal(region.state.lastHeaders?.get("x-bv-verified-sub"), "alice");
    assert.equal(region.state.lastHeaders?.get("x-bv-user-id"), null);
    // The region re-verifies the token itself, so it is forwarded untouched.
    assert.equal(region.state.lastHeaders?.get("authorization"), `Bearer ${token}`);
  } finally {
    await edge.stop();
    await region.close();
  }
});

Deno.test("edge reloads the regions' key sets when a token names a kid it has not seen", async () => {
  const { key, region, edge } = await setup({ jwksCooldownMs: 0 });
  try {
    const first = await edge.app.request("/api/v1/orders", bearer(await key.sign("alice"), placeOrder));
    assert.equal(first.status, 200);
    await first.body?.cancel();
    const fetchesBefore = region.state.jwksFetches;
    // The auth service publishes a new key; the edge has never seen its kid.
    const next = await createEdgeTestKey();
    region.state.jwks = { keys: [key.jwk, next.jwk] };
    const rotated = await edge.app.request("/api/v1/orders", bearer(await next.sign("bob"), placeOrder));
    assert.equal(rotated.status, 200);
    await rotated.body?.cancel();
    assert.equal(region.state.jwksFetches, fetchesBefore + 1);
    assert.equal(region.state.lastHeaders?.get("x-bv-verified-sub"), "bob");
  } finally {
    await edge.stop();
    await region.close();
  }
});

/** Two fake regions, each publishing its own signing key, behind one edge that loads both key sets. */
async function twoRegions(options?: { readonly jwksCooldownMs?: number }) {
  const eastKey = await createEdgeTestKey();
  const westKey = await createEdgeTestKey();
  const east = fakeRegion("east", { jwks: { keys: [eastKey.jwk] } });
  const west = fakeRegion("west", { jwks: { keys: [westKey.jwk] } });
  const edge = createEdge({
    regions: [east, west],
    auth: {
      jwksUrls: [`${east.url}/.well-known/jwks.json`, `${west.url}/.well-known/jwks.json`],
      issuer: TEST_ISSUER,
      audience: TEST_AUDIENCE,
      jwksCooldownMs: options?.jwksCooldownMs,
    },
  });
  return { eastKey, westKey, east, west, edge };
}

Deno.test("edge accepts tokens signed by any region's keys", async () => {
  const { eastKey, westKey, east, west, edge } = await twoRegions();
  try {
    for (const key of [eastKey, westKey]) {
      const response = await edge.app.request("/api/v1/orders", bearer(await key.sign("carol"), placeOrder));
      assert.equal(response.status, 200);
      await response.body?.cancel();
    }
  } finally {
    await edge.stop();
    await Promise.all([east.close(), west.close()]);
  }
});

Deno.test("edge answers 503, not 401, when no region's key set can be loaded", async () => {
  const key = await createEdgeTestKey();
  const region = fakeRegion("east");
  const unreachable = "http://127.0.0.1:9/.well-known/jwks.json";
  const edge = createEdge({
    regions: [region],
    auth: { jwksUrls: [unreachable], issuer: TEST_ISSUER, audience: TEST_AUDIENCE, jwksTimeoutMs: 500 },
  });
  try {
    const response = await edge.app.request("/api/v1/orders", bearer(await key.sign("alice"), placeOrder));
    assert.equal(response.status, 503);
    assert.equal((await response.json()).code, "COMMON.UPSTREAM_UNAVAILABLE");
    assert.equal(region.state.hits, 0);
  } finally {
    await edge.stop();
    await region.close();
  }
});

Deno.test("edge keeps a region's last good keys while that region's key set cannot be loaded", async () => {
  const { eastKey, east, west, edge } = await twoRegions({ jwksCooldownMs: 0 });
  try {
    const before = await edge.app.request("/api/v1/orders", bearer(await eastKey.sign("dave"), placeOrder));
    assert.equal(before.status, 200);
    await before.body?.cancel();
    // East's auth service breaks (a failover, a DR drill); an unknown kid then forces a reload of both sets.
    east.state.jwks = {} as typeof east.state.jwks;
    const fetchesBefore = west.state.jwksFetches;
    const stranger = await createEdgeTestKey();
    const unknown = await edge.app.request("/api/v1/orders", bearer(await stranger.sign("eve"), placeOrder));
    assert.equal(unknown.status, 401);
    await unknown.body?.cancel();
    assert.equal(west.state.jwksFetches, fetchesBefore + 1, "the unknown kid reloaded the key sets");
    const after = await edge.app.request("/api/v1/orders", bearer(await eastKey.sign("dave"), placeOrder));
    assert.equal(after.status, 200, "east's tokens still verify with its last good keys");
    await after.body?.cancel();
  } finally {
    await edge.stop();
    await Promise.all([east.close(), west.close()]);
  }
});
