/**
 * Refresh tokens: rotation, reuse detection, expiry, rotation that fails to sign (tokens.ts) and sign-out
 * (`POST /api/v1/auth/logout`), on PostgreSQL and on PGlite.
 */
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { assertProblem, AUDIENCE, type Harness, ISSUER, onPostgres, testOnBothDatabases } from "./_auth_fixture.ts";
import type { TokenPair } from "./mod.ts";
import { createSigningKeyStore, type SigningKeyStore } from "./signing_keys.ts";
import { createTokenService, type TokenService } from "./tokens.ts";

Deno.test("refresh rotates the token, and reusing a used one revokes its whole family only", async () => {
  await onPostgres(async (h) => {
    await h.signup("bob@example.com");
    const first = await h.login("bob@example.com", "correct-horse-1");
    const otherSession = await h.login("bob@example.com", "correct-horse-1");
    const second: TokenPair = await (await h.post("/api/v1/auth/refresh", { refreshToken: first.refreshToken }))
      .json();

    // Past the reuse grace window (30 s; within it a replay is a retry: refresh_retry_test.ts).
    h.clock.nowMs += 30_001;
    await assertProblem(
      await h.post("/api/v1/auth/refresh", { refreshToken: first.refreshToken }),
      401,
      "AUTH.REFRESH_TOKEN_INVALID",
    );
    // The thief or the owner holds `second`: the family is revoked, so it fails too.
    await assertProblem(
      await h.post("/api/v1/auth/refresh", { refreshToken: second.refreshToken }),
      401,
      "AUTH.REFRESH_TOKEN_INVALID",
    );
    const other = await h.post("/api/v1/auth/refresh", { refreshToken: otherSession.refreshToken });
    assert.equal(other.status, 200);
    const rows = await h.sql.query<{ revoked: boolean }>`
      select revoked_at is not null as revoked from auth_refresh_tokens`;
    assert.equal(rows.filter((row) => row.revoked).length, 2);
    assert.equal(
      (await h.sql.query`select 1 from auth_refresh_tokens where token_hash = ${first.refreshToken}`).length,
      0,
      "only hashes are stored",
    );
  });
});

Deno.test("a refresh token expires after 30 days, and an unknown one is refused", async () => {
  await onPostgres(async (h) => {
    const pair = await h.signup("cy@example.com");
    h.clock.nowMs += 30 * 24 * 3600 * 1000 + 1;
    await assertProblem(
      await h.post("/api/v1/auth/refresh", { refreshToken: pair.refreshToken }),
      401,
      "AUTH.REFRESH_TOKEN_INVALID",
    );
    await assertProblem(
      await h.post("/api/v1/auth/refresh", { refreshToken: "A".repeat(43) }),
      401,
      "AUTH.REFRESH_TOKEN_INVALID",
    );
  });
});

type SigningFault = "the signing key is unavailable" | "signing throws";

/**
 * A token service on the harness's database whose first signing fails as `fault` says, then works. It stands
 * in for a key store outage or a key that cannot sign, at the moment a rotation needs its access token.
 */
function tokenServiceFailingOnce(h: Harness, fault: SigningFault): TokenService {
  const now = () => h.clock.nowMs;
  const keys = createSigningKeyStore({ sql: h.sql, now, accessTokenTtlSec: 900 });
  let failuresLeft = 1;
  const failing: SigningKeyStore = {
    ...keys,
    async signingKey() {
      const key = await keys.signingKey();
      if (failuresLeft-- <= 0) return key;
      if (fault === "the signing key is unavailable") throw new Error("Signing key unavailable (injected)");
      // An HMAC key cannot sign EdDSA, so jose throws inside sign(), as with a corrupt key.
      const hmac = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      return { kid: key.kid, privateKey: hmac };
    },
  };
  return createTokenService({
    sql: h.sql,
    keys: failing,
    issuer: ISSUER,
    audience: AUDIENCE,
    accessTokenTtlSec: 900,
    now,
  });
}

async function refreshTokenRows(h: Harness): Promise<{ used: number; revoked: number; total: number }> {
  const [row] = await h.sql.query<{ used: number; revoked: number; total: number }>`
    select count(used_at)::int as used, count(revoked_at)::int as revoked, count(*)::int as total
    from auth_refresh_tokens`;
  return row;
}

for (const fault of ["the signing key is unavailable", "signing throws"] as const) {
  testOnBothDatabases(
    `a refresh that fails because ${fault} leaves its token usable, and the retry rotates it`,
    async (h) => {
      const pair = await h.signup("kim@example.com");
      const tokens = tokenServiceFailingOnce(h, fault);
      await assert.rejects(tokens.refresh(pair.refreshToken));
      const afterFailure = await refreshTokenRows(h);

      // The client retries with the same token: a rotation, not a reuse, so the user stays signed in.
      const retried = await tokens.refresh(pair.refreshToken);
      assert.equal(decodeJwt(retried.accessToken).email, "kim@example.com");
      const next = await h.post("/api/v1/auth/refresh", { refreshToken: retried.refreshToken });
      assert.equal(next.status, 200, await next.text());
      assert.deepEqual(afterFailure, { used: 0, revoked: 0, total: 1 }, "the failed attempt wrote nothing");
      assert.deepEqual(await refreshTokenRows(h), { used: 2, revoked: 0, total: 3 }, "no token was revoked");
    },
  );
}

async function refreshStatus(h: Harness, pair: TokenPair): Promise<number> {
  const response = await h.post("/api/v1/auth/refresh", { refreshToken: pair.refreshToken });
  await response.body?.cancel();
  return response.status;
}

async function logout(h: Harness, refreshToken: string): Promise<void> {
  const response = await h.post("/api/v1/auth/logout", { refreshToken });
  assert.equal(response.status, 204, await response.clone().text());
  assert.equal(await response.text(), "");
}

testOnBothDatabases("logout revokes the whole family of the token it is given, and no other", async (h) => {
  const signedUp = await h.signup("lou@example.com");
  const otherSession = await h.login("lou@example.com", "correct-horse-1");
  const rotated: TokenPair = await (await h.post("/api/v1/auth/refresh", { refreshToken: signedUp.refreshToken }))
    .json();
  await logout(h, rotated.refreshToken);

  await assertProblem(
    await h.post("/api/v1/auth/refresh", { refreshToken: rotated.refreshToken }),
    401,
    "AUTH.REFRESH_TOKEN_INVALID",
  );
  assert.equal(await refreshStatus(h, signedUp), 401);
  assert.equal(await refreshStatus(h, otherSession), 200, "another sign-in is another family");
  // Access tokens are verified without this service, so one already issued lives until it expires (TTL).
  assert.equal((await h.get("/whoami", rotated.accessToken)).status, 200);
});

testOnBothDatabases("logout with an older, used token of the family signs that family out too", async (h) => {
  const first = await h.signup("max@example.com");
  const second: TokenPair = await (await h.post("/api/v1/auth/refresh", { refreshToken: first.refreshToken }))
    .json();
  await logout(h, first.refreshToken);
  assert.equal(await refreshStatus(h, second), 401);
});

testOnBothDatabases("logout answers 204 for a token already revoked, unknown or malformed", async (h) => {
  const pair = await h.signup("ned@example.com");
  await logout(h, pair.refreshToken);
  await logout(h, pair.refreshToken);
  await logout(h, "A".repeat(43));
  await logout(h, "not a refresh token");
  assert.equal(await refreshStatus(h, pair), 401);
  assert.deepEqual(await refreshTokenRows(h), { used: 0, revoked: 1, total: 1 });
});

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

testOnBothDatabases("a successor a racing rotation added to a family after its logout is refused", async (h) => {
  const pair = await h.signup("ola@example.com");
  const [{ family_id: familyId, user_id: userId }] = await h.sql.query<{ family_id: string; user_id: string }>`
    select family_id, user_id from auth_refresh_tokens`;
  await logout(h, pair.refreshToken);
  // What a rotation holding its row lock during the logout commits afterwards: a live token the revoking
  // statement never saw.
  const straggler = "S".repeat(43);
  const at = new Date(h.clock.nowMs);
  await h.sql.query`
    insert into auth_refresh_tokens (token_hash, user_id, family_id, created_at, expires_at)
    values (${await sha256Hex(straggler)}, ${userId}, ${familyId}, ${at}, ${new Date(h.clock.nowMs + 60_000)})`;
  await assertProblem(
    await h.post("/api/v1/auth/refresh", { refreshToken: straggler }),
    401,
    "AUTH.REFRESH_TOKEN_INVALID",
  );
});

Deno.test("logout refuses a bad body with 400 problem+json", async () => {
  await onPostgres(async (h) => {
    const path = "/api/v1/auth/logout";
    await assertProblem(await h.post(path, "{not json"), 400, "COMMON.MALFORMED_JSON");
    await assertProblem(await h.post(path, {}), 400, "COMMON.VALIDATION_FAILED");
    await assertProblem(await h.post(path, { refreshToken: "" }), 400, "COMMON.VALIDATION_FAILED");
    await assertProblem(await h.post(path, { refreshToken: "x".repeat(129) }), 400, "COMMON.VALIDATION_FAILED");
    await assertProblem(
      await h.post(path, { refreshToken: "A".repeat(43), everywhere: true }),
      400,
      "COMMON.VALIDATION_FAILED",
    );
  });
});

testOnBothDatabases("expired refresh tokens are deleted in the background of a refresh; live ones stay", async (h) => {
  await h.signup("dora@example.com");
  const old = await h.login("dora@example.com", "correct-horse-1");
  h.clock.nowMs += 10 * 86_400_000;
  const live = await h.login("dora@example.com", "correct-horse-1");
  // 31 days after the first sign-in: its tokens (30-day TTL) are expired, the second session's are not.
  h.clock.nowMs += 21 * 86_400_000;
  const count = async () => (await h.sql.query<{ n: number }>`select count(*)::int as n from auth_refresh_tokens`)[0].n;
  const before = await count();
  const rotated: TokenPair = await (await h.post("/api/v1/auth/refresh", { refreshToken: live.refreshToken })).json();
  const deadline = Date.now() + 5_000;
  while (await count() !== before - 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  // Gone: the first session's token and the sign-up's; kept: the live session's used token and its successor.
  assert.equal(await count(), before + 1 - 2);
  await assertProblem(
    await h.post("/api/v1/auth/refresh", { refreshToken: old.refreshToken }),
    401,
    "AUTH.REFRESH_TOKEN_INVALID",
  );
  assert.equal((await h.post("/api/v1/auth/refresh", { refreshToken: rotated.refreshToken })).status, 200);
});

testOnBothDatabases(
  "the sweep keeps a revoked family whose racing successor is still live: it stays refused",
  async (h) => {
    await h.signup("erin@example.com");
    const first = await h.login("erin@example.com", "correct-horse-1");
    h.clock.nowMs += 10 * 86_400_000;
    const second: TokenPair = await (await h.post("/api/v1/auth/refresh", { refreshToken: first.refreshToken })).json();
    // The end state of a logout racing that rotation: the revoking update did not see the successor it inserted.
    await h.sql.query`update auth_refresh_tokens set revoked_at = now() where replaced_by is not null`;
    await assertProblem(
      await h.post("/api/v1/auth/refresh", { refreshToken: second.refreshToken }),
      401,
      "AUTH.REFRESH_TOKEN_INVALID",
    );
    // 31 days after the first sign-in its token is expired; a sign-in starts the sweep.
    h.clock.nowMs += 21 * 86_400_000;
    await h.login("erin@example.com", "correct-horse-1");
    const count = async () =>
      (await h.sql.query<{ n: number }>`select count(*)::int as n from auth_refresh_tokens`)[0].n;
    // The sign-up's family (all expired) goes; the raced family keeps its revoked row.
    const deadline = Date.now() + 5_000;
    while (await count() !== 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await count(), 3);
    await assertProblem(
      await h.post("/api/v1/auth/refresh", { refreshToken: second.refreshToken }),
      401,
      "AUTH.REFRESH_TOKEN_INVALID",
    );
  },
);
