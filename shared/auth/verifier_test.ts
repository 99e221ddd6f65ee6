import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  base64url,
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";
import { type AuthEnv, createTokenVerifier, requireAuth, type TokenVerifier } from "./mod.ts";
import type { ProblemError } from "../contracts/problem.ts";

const ISSUER = "https://auth.test";
const AUDIENCE = "bitvelocity-test";
const START_MS = Date.parse("2030-01-01T00:00:00Z");

interface Keys {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly publicJwk: JWK;
}

async function newKeys(kid: string): Promise<Keys> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" };
  return { kid, privateKey, publicKey, publicJwk };
}

/** A well-formed access token at `nowMs`, with `overrides` applied to claims. */
function sign(keys: Keys, nowMs: number, overrides: JWTPayload = {}): Promise<string> {
  const iat = Math.floor(nowMs / 1000);
  return new SignJWT({
    sub: "4f5c2f8e-0000-4000-8000-000000000001",
    email: "ada@example.com",
    roles: ["CUSTOMER"],
    iss: ISSUER,
    aud: AUDIENCE,
    iat,
    nbf: iat,
    exp: iat + 900,
    jti: crypto.randomUUID(),
    ...overrides,
  }).setProtectedHeader({ alg: "EdDSA", kid: keys.kid, typ: "at+jwt" }).sign(keys.privateKey);
}

async function setup() {
  const keys = await newKeys("key-1");
  const clock = { nowMs: START_MS };
  let loads = 0;
  const jwks: JSONWebKeySet = { keys: [keys.publicJwk] };
  const verifier = createTokenVerifier({
    jwks: () => {
      loads++;
      return Promise.resolve(structuredClone(jwks));
    },
    issuer: ISSUER,
    audience: AUDIENCE,
    now: () => clock.nowMs,
  });
  return { keys, clock, jwks, verifier, loads: () => loads, app: appOf(verifier) };
}

function appOf(verifier: TokenVerifier): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();
  app.get("/me", requireAuth(verifier), (c) => c.json(c.get("principal")));
  app.get("/admin", requireAuth(verifier, { roles: ["ADMIN"] }), (c) => c.json({ ok: true }));
  return app;
}

function call(app: Hono<AuthEnv>, token: string | undefined, path = "/me"): Promise<Response> {
  return Promise.resolve(
    app.request(path, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }),
  );
}

async function assertProblem(response: Response, status: number, code: string): Promise<void> {
  assert.equal(response.status, status);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const body = await response.json();
  assert.equal(body.code, code);
  assert.equal(body.status, status);
  assert.equal(typeof body.detail, "string");
}

Deno.test("requireAuth() admits a valid token and exposes its principal", async () => {
  const { keys, clock, app } = await setup();
  const response = await call(app, await sign(keys, clock.nowMs));
  assert.equal(response.status, 200);
  const principal = await response.json();
  assert.equal(principal.userId, "4f5c2f8e-0000-4000-8000-000000000001");
  assert.equal(principal.email, "ada@example.com");
  assert.deepEqual(principal.roles, ["CUSTOMER"]);
  assert.equal(principal.expiresAt, Math.floor(START_MS / 1000) + 900);
});

Deno.test("requireAuth() answers 401 AUTH.UNAUTHENTICATED with WWW-Authenticate when no token is sent", async () => {
  const { app } = await setup();
  const response = await call(app, undefined);
  assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer/);
  await assertProblem(response, 401, "AUTH.UNAUTHENTICATED");
});

Deno.test("an expired token is rejected with 401 AUTH.TOKEN_EXPIRED once past the 60 s skew", async () => {
  const { keys, clock, app } = await setup();
  const token = await sign(keys, clock.nowMs);
  clock.nowMs += (900 + 61) * 1000;
  const response = await call(app, token);
  assert.match(response.headers.get("www-authenticate") ?? "", /invalid_token/);
  await assertProblem(response, 401, "AUTH.TOKEN_EXPIRED");
});

Deno.test("a token expired by less than the 60 s skew is still accepted", async () => {
  const { keys, clock, app } = await setup();
  const token = await sign(keys, clock.nowMs);
  clock.nowMs += (900 + 50) * 1000;
  assert.equal((await call(app, token)).status, 200);
});

Deno.test("a token signed by an unknown key is rejected with 401 AUTH.TOKEN_INVALID", async () => {
  const { clock, app } = await setup();
  const stranger = await newKeys("key-unknown");
  await assertProblem(await call(app, await sign(stranger, clock.nowMs)), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("a token signed by a foreign key that reuses a known kid is rejected", async () => {
  const { clock, app } = await setup();
  const impostor = await newKeys("key-1");
  await assertProblem(await call(app, await sign(impostor, clock.nowMs)), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("an alg: none token is rejected with 401 AUTH.TOKEN_INVALID", async () => {
  const { keys, clock, app } = await setup();
  const valid = await sign(keys, clock.nowMs);
  const payload = valid.split(".")[1];
  const header = base64url.encode(JSON.stringify({ alg: "none", typ: "at+jwt", kid: keys.kid }));
  await assertProblem(await call(app, `${header}.${payload}.`), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("an HS256 token keyed with the public key bytes (algorithm confusion) is rejected", async () => {
  const { keys, clock, app } = await setup();
  const iat = Math.floor(clock.nowMs / 1000);
  const claims = { sub: "x", email: "x@example.com", roles: ["ADMIN"], iss: ISSUER, aud: AUDIENCE, jti: "j" };
  for (
    const secret of [new TextEncoder().encode(await exportSPKI(keys.publicKey)), base64url.decode(keys.publicJwk.x!)]
  ) {
    const forged = await new SignJWT({ ...claims, iat, nbf: iat, exp: iat + 900 })
      .setProtectedHeader({ alg: "HS256", kid: keys.kid, typ: "at+jwt" })
      .sign(secret);
    await assertProblem(await call(app, forged, "/admin"), 401, "AUTH.TOKEN_INVALID");
  }
});

Deno.test("a token for another audience is rejected with 401 AUTH.TOKEN_INVALID", async () => {
  const { keys, clock, app } = await setup();
  await assertProblem(await call(app, await sign(keys, clock.nowMs, { aud: "other-api" })), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("a token from another issuer is rejected with 401 AUTH.TOKEN_INVALID", async () => {
  const { keys, clock, app } = await setup();
  const token = await sign(keys, clock.nowMs, { iss: "https://evil.test" });
  await assertProblem(await call(app, token), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("a token whose payload was changed after signing is rejected with 401 AUTH.TOKEN_INVALID", async () => {
  const { keys, clock, app } = await setup();
  const [header, payload, signature] = (await sign(keys, clock.nowMs)).split(".");
  const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload)));
  claims.roles = ["ADMIN"];
  const tampered = `${header}.${base64url.encode(JSON.stringify(claims))}.${signature}`;
  await assertProblem(await call(app, tampered, "/admin"), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("a token not valid before a time beyond the skew is rejected with 401 AUTH.TOKEN_INVALID", async () => {
  const { keys, clock, app } = await setup();
  const nbf = Math.floor(clock.nowMs / 1000) + 120;
  await assertProblem(await call(app, await sign(keys, clock.nowMs, { nbf })), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("a token without the at+jwt type (for example an ID token) is rejected", async () => {
  const { keys, clock, app } = await setup();
  const iat = Math.floor(clock.nowMs / 1000);
  const token = await new SignJWT({ sub: "x", email: "x@example.com", roles: [], jti: "j" })
    .setProtectedHeader({ alg: "EdDSA", kid: keys.kid, typ: "JWT" })
    .setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt(iat).setNotBefore(iat).setExpirationTime(iat + 900)
    .sign(keys.privateKey);
  await assertProblem(await call(app, token), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("garbage and oversized bearer values are rejected with 401 problem+json", async () => {
  const { app } = await setup();
  await assertProblem(await call(app, "not-a-jwt"), 401, "AUTH.TOKEN_INVALID");
  await assertProblem(await call(app, "a".repeat(9000)), 401, "AUTH.TOKEN_INVALID");
});

Deno.test("requireAuth({ roles }) answers 403 AUTH.FORBIDDEN when no listed role is held", async () => {
  const { keys, clock, app } = await setup();
  await assertProblem(await call(app, await sign(keys, clock.nowMs), "/admin"), 403, "AUTH.FORBIDDEN");
  const admin = await sign(keys, clock.nowMs, { roles: ["CUSTOMER", "ADMIN"] });
  assert.equal((await call(app, admin, "/admin")).status, 200);
});

Deno.test("unknown role names in a token are dropped, not trusted", async () => {
  const { keys, clock, verifier } = await setup();
  const principal = await verifier.verify(await sign(keys, clock.nowMs, { roles: ["CUSTOMER", "ROOT"] }));
  assert.deepEqual(principal.roles, ["CUSTOMER"]);
});

Deno.test("a cached key set is reloaded for an unknown kid only after the cooldown", async () => {
  const { keys, clock, jwks, verifier, loads } = await setup();
  await verifier.verify(await sign(keys, clock.nowMs));
  assert.equal(loads(), 1);
  const added = await newKeys("key-2");
  jwks.keys.push(added.publicJwk);
  clock.nowMs += 1_000; // inside the 30 s cooldown: the stale set answers
  await assert.rejects(verifier.verify(await sign(added, clock.nowMs)), { code: "AUTH.TOKEN_INVALID" });
  assert.equal(loads(), 1);
  clock.nowMs += 30_000;
  assert.equal((await verifier.verify(await sign(added, clock.nowMs))).email, "ada@example.com");
  assert.equal(loads(), 2);
});

Deno.test("createTokenVerifier() refuses a clock tolerance above 60 s at setup", () => {
  assert.throws(
    () =>
      createTokenVerifier({
        jwks: () => Promise.resolve({ keys: [] }),
        issuer: ISSUER,
        audience: AUDIENCE,
        clockToleranceSec: 61,
      }),
    RangeError,
  );
  assert.throws(() => requireAuth(undefined as unknown as TokenVerifier), TypeError);
});

Deno.test("a remote JWKS URL is fetched, and an unreachable one answers 503 problem+json", async () => {
  const keys = await newKeys("remote-1");
  let fetches = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, () => {
    fetches++;
    return Response.json({ keys: [keys.publicJwk] });
  });
  try {
    const remote = createTokenVerifier({
      jwks: new URL(`http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`),
      issuer: ISSUER,
      audience: AUDIENCE,
    });
    const principal = await remote.verify(await sign(keys, Date.now()));
    assert.equal(principal.email, "ada@example.com");
    await remote.verify(await sign(keys, Date.now()));
    assert.equal(fetches, 1);
  } finally {
    await server.shutdown();
  }
  const unreachable = createTokenVerifier({
    jwks: new URL(`http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`),
    issuer: ISSUER,
    audience: AUDIENCE,
    timeoutMs: 1_000,
  });
  await assertProblem(await call(appOf(unreachable), await sign(keys, Date.now())), 503, "COMMON.UPSTREAM_UNAVAILABLE");
});

/** A verifier over a loader the test steers: each load answers with `next()` (a set, a throw or a hang). */
async function steeredLoader() {
  const keys = await newKeys("key-1");
  const clock = { nowMs: START_MS };
  let next: () => Promise<JSONWebKeySet> = () => Promise.resolve({ keys: [keys.publicJwk] });
  let loads = 0;
  const verifier = createTokenVerifier({
    jwks: () => {
      loads++;
      return next();
    },
    issuer: ISSUER,
    audience: AUDIENCE,
    now: () => clock.nowMs,
  });
  const steer = (answer: () => Promise<JSONWebKeySet>) => (next = answer);
  return { keys, clock, verifier, steer, loads: () => loads };
}

Deno.test("a key set whose reload fails keeps serving the set it had and retries only after the cooldown", async () => {
  const { keys, clock, verifier, steer, loads } = await steeredLoader();
  await verifier.verify(await sign(keys, clock.nowMs));
  assert.equal(loads(), 1);
  // The key store breaks: it throws, or sends a set jose refuses whole (an entry that is not an object).
  const malformed = { keys: [null] } as unknown as JSONWebKeySet;
  for (const broken of [() => Promise.reject(new Error("key store down")), () => Promise.resolve(malformed)]) {
    steer(broken);
    clock.nowMs += 300_000; // past the 300 s cache age
    const loadsBefore = loads();
    for (let i = 0; i < 5; i++) {
      assert.equal((await verifier.verify(await sign(keys, clock.nowMs))).email, "ada@example.com");
      clock.nowMs += 1_000;
    }
    assert.equal(loads(), loadsBefore + 1, "one failed reload, not one per request");
    clock.nowMs += 30_000; // the cooldown after a failed reload has passed: one more try
    await verifier.verify(await sign(keys, clock.nowMs));
    assert.equal(loads(), loadsBefore + 2);
  }
});

Deno.test("a stale key set answers at once while its reload hangs, with one reload at a time", async () => {
  const { keys, clock, verifier, steer, loads } = await steeredLoader();
  await verifier.verify(await sign(keys, clock.nowMs));
  const hang = Promise.withResolvers<JSONWebKeySet>();
  steer(() => hang.promise);
  clock.nowMs += 300_000;
  const answered = Promise.all([1, 2, 3].map(async () => (await verifier.verify(await sign(keys, clock.nowMs))).email));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waited = new Promise<"still waiting">((resolve) => (timer = setTimeout(() => resolve("still waiting"), 300)));
  try {
    assert.deepEqual(await Promise.race([answered, waited]), ["ada@example.com", "ada@example.com", "ada@example.com"]);
    assert.equal(loads(), 2, "one background reload for the three requests");
  } finally {
    clearTimeout(timer);
    hang.resolve({ keys: [keys.publicJwk] });
    await answered.catch(() => {});
  }
});

Deno.test("while a source's keys never loaded, an expired token with a kid we lack is 401 TOKEN_EXPIRED, not 503", async () => {
  const { keys, clock, verifier, steer } = await steeredLoader();
  const west = await newKeys("west-key");
  steer(() => Promise.resolve({ keys: [keys.publicJwk], neverLoaded: ["http://west/jwks"] } as JSONWebKeySet));
  await verifier.verify(await sign(keys, clock.nowMs));
  // A live token of the region that never loaded: retry later (it may be good).
  const live = verifier.verify(await sign(west, clock.nowMs));
  await assert.rejects(live, (error: ProblemError) => error.code === "COMMON.UPSTREAM_UNAVAILABLE");
  // One past its exp and the skew: no key could make it good; the client should refresh, not wait.
  const expired = verifier.verify(await sign(west, clock.nowMs - 3_600_000));
  await assert.rejects(expired, (error: ProblemError) => error.code === "AUTH.TOKEN_EXPIRED");
});
