import { createPasswordHasher } from "./password.ts";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { decodeJwt, decodeProtectedHeader, type JSONWebKeySet } from "jose";
import { type AuthEnv, createTokenVerifier, type TokenVerifier } from "../../../shared/auth/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { createAuthModule, type TokenPair } from "./mod.ts";
import { ADMIN, assertProblem, AUDIENCE, type Harness, harnessOn, ISSUER, onPostgres } from "./_auth_fixture.ts";

async function signupLoginRefreshAndUse(h: Harness): Promise<void> {
  const signedUp = await h.signup("Ada@Example.COM");
  assert.equal(signedUp.expiresIn, 900);
  assert.match(signedUp.refreshToken, /^[A-Za-z0-9_-]{43}$/);
  const loggedIn = await h.login("ada@example.com", "correct-horse-1");
  const refreshResponse = await h.post("/api/v1/auth/refresh", { refreshToken: loggedIn.refreshToken });
  assert.equal(refreshResponse.headers.get("cache-control"), "no-store");
  const refreshed: TokenPair = await refreshResponse.json();
  assert.equal(refreshResponse.status, 200);
  assert.notEqual(refreshed.refreshToken, loggedIn.refreshToken);

  const header = decodeProtectedHeader(refreshed.accessToken);
  assert.equal(header.alg, "EdDSA");
  assert.equal(header.typ, "at+jwt");
  assert.equal(typeof header.kid, "string");
  const claims = decodeJwt(refreshed.accessToken);
  assert.equal(claims.exp! - claims.iat!, 900);
  assert.equal(claims.nbf, claims.iat);
  assert.equal(claims.iss, ISSUER);
  assert.equal(claims.aud, AUDIENCE);

  for (const pair of [signedUp, loggedIn, refreshed]) {
    const response = await h.get("/whoami", pair.accessToken);
    assert.equal(response.status, 200);
    const principal = await response.json();
    assert.equal(principal.email, "ada@example.com");
    assert.deepEqual(principal.roles, ["CUSTOMER"]);
  }
}

Deno.test("signup, login and refresh answer token pairs whose access tokens open a protected route", async () => {
  await onPostgres(signupLoginRefreshAndUse);
});

Deno.test("the same signup, login and refresh flow works on PGlite in memory", async () => {
  const sql = await createPgliteSql();
  try {
    const h = await harnessOn(sql);
    await signupLoginRefreshAndUse(h);
    const pair = await h.login("ada@example.com", "correct-horse-1");
    await h.post("/api/v1/auth/refresh", { refreshToken: pair.refreshToken });
    h.clock.nowMs += 30_001; // past the reuse grace window, where a replay is reuse
    await assertProblem(
      await h.post("/api/v1/auth/refresh", { refreshToken: pair.refreshToken }),
      401,
      "AUTH.REFRESH_TOKEN_INVALID",
    );
  } finally {
    await sql.close();
  }
});

Deno.test("an ADMIN grants roles; a CUSTOMER gets 403, an unknown user 404, no token 401", async () => {
  await onPostgres(async (h) => {
    const admin = await h.login(ADMIN.email, ADMIN.password);
    assert.deepEqual(decodeJwt(admin.accessToken).roles, ["ADMIN"]);
    const customer = await h.signup("dee@example.com");
    const customerId = decodeJwt(customer.accessToken).sub!;
    const path = `/api/v1/auth/users/${customerId}/roles`;

    await assertProblem(await h.post(path, { roles: ["ADMIN"] }, customer.accessToken), 403, "AUTH.FORBIDDEN");
    await assertProblem(await h.post(path, { roles: ["ADMIN"] }), 401, "AUTH.UNAUTHENTICATED");
    const granted = await h.post(path, { roles: ["PARTNER", "PARTNER"] }, admin.accessToken);
    assert.equal(granted.status, 200);
    assert.deepEqual(await granted.json(), { userId: customerId, roles: ["CUSTOMER", "PARTNER"] });

    // New roles reach the user's tokens at the next refresh.
    const refreshed: TokenPair = await (await h.post("/api/v1/auth/refresh", { refreshToken: customer.refreshToken }))
      .json();
    assert.deepEqual(decodeJwt(refreshed.accessToken).roles, ["CUSTOMER", "PARTNER"]);

    await assertProblem(
      await h.post(`/api/v1/auth/users/${crypto.randomUUID()}/roles`, { roles: ["DEVICE"] }, admin.accessToken),
      404,
      "AUTH.USER_NOT_FOUND",
    );
    await assertProblem(
      await h.post("/api/v1/auth/users/not-a-uuid/roles", { roles: ["DEVICE"] }, admin.accessToken),
      404,
      "AUTH.USER_NOT_FOUND",
    );
    await assertProblem(await h.post(path, { roles: ["ROOT"] }, admin.accessToken), 400, "COMMON.VALIDATION_FAILED");
  });
});

Deno.test("signup answers 409 AUTH.EMAIL_TAKEN for an e-mail taken in any letter case", async () => {
  await onPostgres(async (h) => {
    await h.signup("eve@example.com");
    const again = await h.post("/api/v1/auth/signup", { email: " EVE@example.com ", password: "another-pass-1" });
    await assertProblem(again, 409, "AUTH.EMAIL_TAKEN");
  });
});

Deno.test("bad bodies answer 4xx problem+json", async () => {
  await onPostgres(async (h) => {
    const signup = "/api/v1/auth/signup";
    await assertProblem(await h.post(signup, "{not json"), 400, "COMMON.MALFORMED_JSON");
    await assertProblem(
      await h.post(signup, { email: "f@example.com", password: "long-enough-1", role: "ADMIN" }),
      400,
      "COMMON.VALIDATION_FAILED",
    );
    await assertProblem(
      await h.post(signup, { email: "f@example.com", password: "short" }),
      400,
      "COMMON.VALIDATION_FAILED",
    );
    await assertProblem(
      await h.post(signup, { email: "f@example.com", password: "x".repeat(129) }),
      400,
      "COMMON.VALIDATION_FAILED",
    );
    await assertProblem(
      await h.post(signup, { email: "nope", password: "long-enough-1" }),
      400,
      "COMMON.VALIDATION_FAILED",
    );
    await assertProblem(await h.post("/api/v1/auth/refresh", {}), 400, "COMMON.VALIDATION_FAILED");
    await assertProblem(await h.auth.routes.request("/api/v1/auth/login"), 404, "COMMON.NOT_FOUND");
    const wrongType = await h.auth.routes.request(signup, {
      method: "POST",
      body: "email=x",
      headers: { "content-type": "text/plain" },
    });
    await assertProblem(wrongType, 415, "COMMON.UNSUPPORTED_MEDIA_TYPE");
  });
});

Deno.test("login with a wrong password or an unknown e-mail answers the same 401 after the same work", async () => {
  // The work is counted, not timed: an unknown e-mail must cost one full scrypt verification with the same
  // parameters as a real account, so response time does not reveal which e-mails have accounts.
  const real = createPasswordHasher();
  const verified: string[] = [];
  const passwords = {
    hash: (password: string) => real.hash(password),
    verify: (password: string, encoded: string) => {
      verified.push(encoded.split("$").slice(0, 4).join("$"));
      return real.verify(password, encoded);
    },
  };
  const db = await createTestDatabase();
  const sql = createPostgresSql({ url: db.url, maxConnections: 4 });
  try {
    const auth = await createAuthModule({ sql, issuer: ISSUER, audience: AUDIENCE, passwords });
    const app = new Hono<AuthEnv>();
    app.route("/", auth.routes);
    const login = (email: string, password: string) =>
      app.request("/api/v1/auth/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email, password }),
      });
    const signup = await app.request("/api/v1/auth/signup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "gus@example.com", password: "correct-horse-1" }),
    });
    assert.equal(signup.status, 201);
    const wrong = await login("gus@example.com", "wrong-password-1");
    const unknown = await login("nobody@example.com", "wrong-password-1");
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    const [wrongBody, unknownBody] = [await wrong.json(), await unknown.json()];
    assert.equal(wrongBody.code, "AUTH.INVALID_CREDENTIALS");
    assert.deepEqual({ ...unknownBody, traceId: undefined }, { ...wrongBody, traceId: undefined });
    assert.equal(verified.length, 2, "each failed login ran exactly one verification");
    assert.equal(verified[0], verified[1], "with the same KDF and cost parameters");
    assert.match(verified[0], /^scrypt\$32768\$8\$1$/);
  } finally {
    await sql.close();
    await db.drop();
  }
});

Deno.test("the JWKS serves public keys only, with a short Cache-Control max-age", async () => {
  await onPostgres(async (h) => {
    const response = await h.get("/.well-known/jwks.json");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("cache-control"), "public, max-age=60");
    const { keys } = (await response.json()) as JSONWebKeySet;
    assert.equal(keys.length, 1);
    const [key] = keys;
    assert.equal(key.d, undefined);
    assert.deepEqual(
      { kty: key.kty, crv: key.crv, alg: key.alg, use: key.use },
      { kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" },
    );
    assert.equal(typeof key.kid, "string");
  });
});

/** A verifier in another process: it fetches the JWKS over HTTP-like calls and caches it 300 s. */
function remoteVerifier(h: Harness): { verifier: TokenVerifier; fetches: () => number } {
  let fetches = 0;
  const verifier = createTokenVerifier({
    jwks: async () => {
      fetches++;
      return await (await h.get("/.well-known/jwks.json")).json();
    },
    issuer: ISSUER,
    audience: AUDIENCE,
    cacheMaxAgeMs: 300_000,
    cooldownMs: 30_000,
    now: () => h.clock.nowMs,
  });
  return { verifier, fetches: () => fetches };
}

Deno.test("key rotation fails no request: old tokens still verify and cached verifiers know the new key", async () => {
  await onPostgres(async (h) => {
    const remote = remoteVerifier(h);
    const admin = await h.login(ADMIN.email, ADMIN.password);
    const oldKid = decodeProtectedHeader(admin.accessToken).kid;
    const beforeRotation = await h.signup("hal@example.com");
    await remote.verifier.verify(beforeRotation.accessToken);
    assert.equal(remote.fetches(), 1);

    const rotated = await h.post("/api/v1/auth/keys/rotate", {}, admin.accessToken);
    assert.equal(rotated.status, 202);
    const { kid: newKid, activatesAt } = await rotated.json();
    assert.equal(Date.parse(activatesAt), h.clock.nowMs + 600_000);
    assert.notEqual(newKid, oldKid);
    // Published as `next`, but not signing yet.
    const jwksKids = async () =>
      ((await (await h.get("/.well-known/jwks.json")).json()) as JSONWebKeySet).keys.map((k) => k.kid).sort();
    assert.deepEqual(await jwksKids(), [oldKid, newKid].sort());
    assert.equal(decodeProtectedHeader((await h.login("hal@example.com", "correct-horse-1")).accessToken).kid, oldKid);

    // The remote cache expires and is refilled while the new key is still `next`.
    h.clock.nowMs += 350_000;
    await remote.verifier.verify(beforeRotation.accessToken);
    assert.equal(remote.fetches(), 2);

    // The new key signs; the remote verifier accepts its tokens from its cache, with no extra fetch.
    h.clock.nowMs += 260_000;
    const afterRotation = await h.login("hal@example.com", "correct-horse-1");
    assert.equal(decodeProtectedHeader(afterRotation.accessToken).kid, newKid);
    assert.equal((await remote.verifier.verify(afterRotation.accessToken)).email, "hal@example.com");
    assert.equal(remote.fetches(), 2);

    // A token signed before the rotation is still good wherever it is checked.
    assert.equal((await remote.verifier.verify(beforeRotation.accessToken)).email, "hal@example.com");
    assert.equal((await h.get("/whoami", beforeRotation.accessToken)).status, 200);
    const [retired] = await h.sql.query<{ status: string; private_jwk: string | null }>`
      select status, private_jwk from auth_signing_keys where kid = ${oldKid!}`;
    assert.deepEqual(retired, { status: "retired", private_jwk: null });

    // Once every token of the old key has expired (TTL + skew + reload lag), the JWKS drops it.
    h.clock.nowMs += (900 + 60 + 30) * 1000 + 1;
    assert.deepEqual(await jwksKids(), [newKid]);
  });
});

Deno.test("replicas sharing the database switch to the new key at its activation time", async () => {
  await onPostgres(async (first) => {
    const second = await harnessOn(first.sql);
    second.clock.nowMs = first.clock.nowMs;
    const kidOf = (pair: TokenPair) => decodeProtectedHeader(pair.accessToken).kid;
    await first.signup("ivy@example.com");
    const oldKid = kidOf(await second.login("ivy@example.com", "correct-horse-1"));
    await first.auth.rotateSigningKey();
    for (const h of [first, second]) h.clock.nowMs += 600_001;
    const fromSecond = await second.login("ivy@example.com", "correct-horse-1");
    assert.notEqual(kidOf(fromSecond), oldKid);
    assert.equal((await first.auth.verifier.verify(fromSecond.accessToken)).email, "ivy@example.com");
    assert.equal(kidOf(await first.login("ivy@example.com", "correct-horse-1")), kidOf(fromSecond));
  });
});

Deno.test("ensureAdmin() is idempotent and promotes an existing account only with its own password", async () => {
  await onPostgres(async (h) => {
    await h.auth.ensureAdmin(ADMIN.email.toUpperCase(), ADMIN.password);
    await h.signup("jo@example.com");
    // Someone else registered the address: naming it as the admin must not hand them ADMIN.
    await assert.rejects(() => h.auth.ensureAdmin("jo@example.com", "the-operators-password"), /refusing/);
    assert.deepEqual(decodeJwt((await h.login("jo@example.com", "correct-horse-1")).accessToken).roles, ["CUSTOMER"]);
    await h.auth.ensureAdmin("jo@example.com", "correct-horse-1");
    const jo = await h.login("jo@example.com", "correct-horse-1");
    assert.deepEqual(decodeJwt(jo.accessToken).roles, ["CUSTOMER", "ADMIN"]);
    // Already ADMIN: nothing to prove (an operator may have changed the password since).
    await h.auth.ensureAdmin("jo@example.com", "another-password");
    const admins = await h.sql.query`
      select u.email from auth_users u join auth_user_roles r on r.user_id = u.id where r.role = 'ADMIN'`;
    assert.equal(admins.length, 2);
  });
});

Deno.test("during a database outage the JWKS is served from the last keys loaded; sign-ins answer 500", async () => {
  const db = await createTestDatabase();
  const real = createPostgresSql({ url: db.url, maxConnections: 2 });
  const outage = { down: false };
  const refuse = () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432"));
  const sql: Sql = {
    query: (strings, ...values) => outage.down ? refuse() : real.query(strings, ...values),
    exec: (statements) => outage.down ? refuse() : real.exec(statements),
    transaction: (fn) => outage.down ? refuse() : real.transaction(fn),
    ping: (timeoutMs) => real.ping(timeoutMs),
    close: () => real.close(),
  };
  try {
    const h = await harnessOn(sql);
    const before = await (await h.get("/.well-known/jwks.json")).json();
    outage.down = true;
    h.clock.nowMs += 120_000; // past the key store's 30 s row cache
    const during = await h.get("/.well-known/jwks.json");
    assert.equal(during.status, 200);
    assert.deepEqual(await during.json(), before);
    await assertProblem(
      await h.post("/api/v1/auth/login", { email: ADMIN.email, password: ADMIN.password }),
      500,
      "COMMON.INTERNAL",
    );
  } finally {
    await real.close();
    await db.drop();
  }
});
