import assert from "node:assert/strict";
import { Hono } from "hono";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { ACCESS_TOKEN_TYPE, type AuthEnv, createTokenVerifier, requireAuth } from "../../shared/auth/mod.ts";
import { createJwksUnion } from "./jwks_union.ts";

/** A real HTTP server publishing one region's key set. */
function region(kid: string) {
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    () =>
      Response.json({ keys: [{ kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", kid }] }),
  );
  return { url: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`, stop: () => server.shutdown() };
}

Deno.test({
  name: "createJwksUnion() serves every region's keys and keeps a region's last keys while it is down",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const east = region("east-1");
    const west = region("west-1");
    const union = createJwksUnion({ urls: [west.url, east.url], timeoutMs: 1_000, refreshMs: 0 });
    try {
      const kids = async () => (await union.load()).keys.map((k) => k.kid).sort();
      assert.deepEqual(await kids(), ["east-1", "west-1"]);
      await east.stop();
      assert.deepEqual(await kids(), ["east-1", "west-1"]);
    } finally {
      union.stop();
      await west.stop();
    }
  },
});

Deno.test("createJwksUnion() rejects only when no region's keys were ever loaded", async () => {
  const gone = region("gone");
  await gone.stop();
  const union = createJwksUnion({ urls: [gone.url], timeoutMs: 500, refreshMs: 0 });
  try {
    await assert.rejects(union.load(), /No region's JWKS could be loaded/);
  } finally {
    union.stop();
  }
});

const ISSUER = "bitvelocity-auth";
const AUDIENCE = "bitvelocity";

/** A region's signing key: its JWKS entry as `signing_keys.ts` publishes it, and tokens shaped like its own. */
async function signingKey() {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const kid = crypto.randomUUID();
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" };
  const sign = (userId: string, nowMs: number) =>
    new SignJWT({ email: `${userId}@test.example`, roles: ["CUSTOMER"] })
      .setProtectedHeader({ alg: "EdDSA", kid, typ: ACCESS_TOKEN_TYPE })
      .setSubject(userId).setIssuer(ISSUER).setAudience(AUDIENCE).setJti(crypto.randomUUID())
      .setIssuedAt(Math.floor(nowMs / 1000)).setNotBefore(Math.floor(nowMs / 1000))
      .setExpirationTime(Math.floor(nowMs / 1000) + 900).sign(privateKey);
  return { jwk, sign };
}

/** A real HTTP server publishing the body `answer` holds now, or 503 while it holds "down". */
function steeredRegion(answer: { body: unknown }) {
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    () => answer.body === "down" ? new Response("auth service down", { status: 503 }) : Response.json(answer.body),
  );
  return { url: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`, stop: () => server.shutdown() };
}

/**
 * A regional service's auth as `verifier.ts` wires it (union of east's and west's key sets, 60 s cache) with
 * an injected clock; each region publishes what its `answer` holds now. The union starts loading at once, so
 * west's first answer is `westAtStart(west's entry)`.
 */
async function regionalAuth(westAtStart: (jwk: JWK) => unknown) {
  const east = await signingKey();
  const west = await signingKey();
  const westAnswer = { body: westAtStart(west.jwk) };
  const regions = [steeredRegion({ body: { keys: [east.jwk] } }), steeredRegion(westAnswer)];
  const clock = { nowMs: Date.now() };
  const union = createJwksUnion({ urls: regions.map((r) => r.url), timeoutMs: 1_000, refreshMs: 0 });
  const verifier = createTokenVerifier({
    jwks: union.load,
    issuer: ISSUER,
    audience: AUDIENCE,
    cacheMaxAgeMs: 60_000,
    now: () => clock.nowMs,
  });
  const app = new Hono<AuthEnv>().get("/me", requireAuth(verifier), (c) => c.json(c.get("principal")));
  const call = (token: string) => app.request("/me", { headers: { authorization: `Bearer ${token}` } });
  const stop = async () => {
    union.stop();
    await Promise.all(regions.map((r) => r.stop()));
  };
  return { east, west, westAnswer, clock, union, call, stop };
}

Deno.test("a region answers 503 + Retry-After, not 401, to a kid it lacks while a region never loaded", async () => {
  const { east, west, westAnswer, clock, call, stop } = await regionalAuth(() => "down"); // down as we start
  try {
    assert.equal((await call(await east.sign("alice", clock.nowMs))).status, 200);
    const westToken = await west.sign("bob", clock.nowMs);
    const refused = await call(westToken);
    assert.equal(refused.status, 503);
    assert.equal((await refused.json()).code, "COMMON.UPSTREAM_UNAVAILABLE");
    assert.equal(refused.headers.get("retry-after"), "30");
    assert.equal(refused.headers.get("www-authenticate"), null);
    westAnswer.body = { keys: [west.jwk] };
    clock.nowMs += 30_000; // past the cooldown: the token reloads the sets, west's included
    assert.equal((await call(westToken)).status, 200);
    const stranger = await signingKey(); // every region loaded: a kid nobody publishes is a bad token
    const invalid = await call(await stranger.sign("eve", clock.nowMs));
    assert.equal(invalid.status, 401);
    assert.equal((await invalid.json()).code, "AUTH.TOKEN_INVALID");
  } finally {
    await stop();
  }
});

Deno.test("a region's key set with a null entry costs neither its good key nor the other region's tokens", async () => {
  const { east, west, clock, union, call, stop } = await regionalAuth((jwk) => ({ keys: [null, jwk] }));
  try {
    assert.equal((await call(await west.sign("bob", clock.nowMs))).status, 200);
    assert.equal((await call(await east.sign("alice", clock.nowMs))).status, 200);
    const { keys, neverLoaded } = await union.load();
    assert.deepEqual(keys.map((k) => k.kid).sort(), [east.jwk.kid, west.jwk.kid].sort());
    assert.deepEqual(neverLoaded, []);
  } finally {
    await stop();
  }
});
