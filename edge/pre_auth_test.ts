import assert from "node:assert/strict";
import { TEST_AUDIENCE, TEST_ISSUER } from "../shared/testing/test_tokens.ts";
import { fakeRegion } from "./testing/fake_region.ts";
import { createEdgeTestKey, tamperedToken, unsignedToken } from "./testing/test_keys.ts";
import { createEdge } from "./worker.ts";
import { createPreAuth } from "./pre_auth.ts";
import type { Principal } from "../shared/auth/verifier.ts";

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

const EAST_JWKS = "http://127.0.0.1:9/east/.well-known/jwks.json";
const WEST_JWKS = "http://127.0.0.1:9/west/.well-known/jwks.json";

/**
 * Pre-auth over the key sets of east and west behind an injected fetch and clock: each region's JWKS answer
 * is what `answers` holds for it now (a body, an error to throw, or "hang" until the fetch is aborted).
 */
async function keySets() {
  const eastKey = await createEdgeTestKey();
  const westKey = await createEdgeTestKey();
  const answers: Record<string, unknown> = {
    [EAST_JWKS]: { keys: [eastKey.jwk] },
    [WEST_JWKS]: { keys: [westKey.jwk] },
  };
  const fetches: string[] = [];
  const hung: { aborted: boolean; ended: Promise<void> }[] = [];
  const warnings: Record<string, unknown>[] = [];
  const clock = { nowMs: Date.now() };
  const fetchFn = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    fetches.push(url);
    const answer = answers[url];
    if (answer instanceof Error) return Promise.reject(answer);
    if (answer !== "hang") return Promise.resolve(Response.json(answer));
    const { promise, reject } = Promise.withResolvers<Response>();
    const hang = { aborted: false, ended: promise.then(() => {}, () => {}) };
    init?.signal?.addEventListener("abort", () => {
      hang.aborted = true;
      reject(init.signal?.reason);
    });
    hung.push(hang);
    return promise;
  };
  const preAuth = createPreAuth({
    jwksUrls: [EAST_JWKS, WEST_JWKS],
    issuer: TEST_ISSUER,
    audience: TEST_AUDIENCE,
    jwksTimeoutMs: 200,
    now: () => clock.nowMs,
    fetch: fetchFn as typeof fetch,
    warn: (_msg, fields) => warnings.push(fields),
  });
  const authenticate = async (token: string) =>
    await preAuth.authenticate(new Request("http://edge.test/api/v1/orders", bearer(token)), true);
  return { eastKey, westKey, answers, fetches, hung, warnings, clock, authenticate };
}

async function assertRefused(outcome: unknown, status: number, code: string): Promise<Response> {
  assert.ok(outcome instanceof Response, `expected a ${status} answer, got ${JSON.stringify(outcome)}`);
  assert.equal(outcome.status, status);
  assert.equal((await outcome.json()).code, code);
  return outcome;
}

Deno.test("edge answers 503 + Retry-After, not 401, to a kid it lacks while a region's keys never loaded", async () => {
  const { eastKey, westKey, answers, clock, authenticate } = await keySets();
  answers[WEST_JWKS] = new TypeError("error sending request: connection refused"); // west is down as the edge starts
  assert.equal(((await authenticate(await eastKey.sign("alice"))) as Principal).userId, "alice");
  const westToken = await westKey.sign("bob");
  const refused = await assertRefused(await authenticate(westToken), 503, "COMMON.UPSTREAM_UNAVAILABLE");
  assert.equal(refused.headers.get("retry-after"), "30", "the keys may be reloaded after the 30 s cooldown");
  assert.equal(refused.headers.get("www-authenticate"), null, "a 503 does not tell the client its token is bad");
  clock.nowMs += 10_000;
  const stillDown = await assertRefused(await authenticate(westToken), 503, "COMMON.UPSTREAM_UNAVAILABLE");
  assert.equal(stillDown.headers.get("retry-after"), "20");
  // West is back; after the cooldown the same token loads west's keys and passes.
  answers[WEST_JWKS] = { keys: [westKey.jwk] };
  clock.nowMs += 20_000;
  assert.equal(((await authenticate(westToken)) as Principal).userId, "bob");
  // Every region has loaded now: a kid no region publishes is a bad token.
  const stranger = await createEdgeTestKey();
  await assertRefused(await authenticate(await stranger.sign("eve")), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("a region's key set with a null entry costs neither its good key nor the other region's tokens", async () => {
  const { eastKey, westKey, answers, warnings, authenticate } = await keySets();
  const privateHalf = { ...eastKey.jwk, kid: "leaked", d: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" };
  answers[EAST_JWKS] = {
    keys: [null, "rsa?", { kty: "RSA", kid: "r1", n: "AQAB", e: "AQAB" }, privateHalf, eastKey.jwk],
  };
  assert.equal(((await authenticate(await eastKey.sign("alice"))) as Principal).userId, "alice");
  assert.equal(((await authenticate(await westKey.sign("bob"))) as Principal).userId, "bob");
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].url, EAST_JWKS);
  assert.equal(warnings[0].droppedCount, 4);
});

Deno.test("edge answers from its stale key set at once while a region's JWKS fetch hangs", async () => {
  const { eastKey, westKey, answers, fetches, hung, clock, authenticate } = await keySets();
  assert.equal(((await authenticate(await westKey.sign("bob"))) as Principal).userId, "bob");
  answers[WEST_JWKS] = "hang"; // black-holed: answers nothing until the 200 ms fetch bound aborts it
  clock.nowMs += 300_000; // the set is now as old as the 300 s cache age
  const fetchesBefore = fetches.length;
  const outcomes = await Promise.all([westKey.sign("bob"), eastKey.sign("alice"), westKey.sign("carol")].map(
    async (token) => authenticate(await token),
  ));
  assert.deepEqual(outcomes.map((o) => (o as Principal).userId), ["bob", "alice", "carol"]);
  assert.equal(hung.length, 1, "one background refresh for the three requests");
  assert.equal(hung[0].aborted, false, "the requests were answered before the hung fetch was given up");
  assert.equal(fetches.length, fetchesBefore + 2, "one refresh fetches each region once");
  await hung[0].ended;
});
