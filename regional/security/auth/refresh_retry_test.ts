/**
 * A refresh retried because its answer was lost (tokens.ts, the reuse grace window): a retry within the window is
 * answered in the same family, anything else stays reuse and revokes the family. On PostgreSQL and PGlite; the races on
 * PostgreSQL, where two transactions really run at once.
 */
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import type { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Row, Sql, SqlValue } from "../../../shared/ports/sql.ts";
import {
  assertProblem,
  AUDIENCE,
  type Harness,
  ISSUER,
  onPostgres,
  START_MS,
  testOnBothDatabases,
} from "./_auth_fixture.ts";
import type { TokenPair } from "./mod.ts";
import { createSigningKeyStore } from "./signing_keys.ts";
import { createTokenService } from "./tokens.ts";

const GRACE_MS = 30_000;
const REFRESH = "/api/v1/auth/refresh";

async function refresh(h: Harness, refreshToken: string): Promise<Response> {
  return await h.post(REFRESH, { refreshToken });
}

async function refreshed(h: Harness, refreshToken: string): Promise<TokenPair> {
  const response = await refresh(h, refreshToken);
  assert.equal(response.status, 200, await response.clone().text());
  return await response.json();
}

async function refused(h: Harness, refreshToken: string, why: string): Promise<void> {
  const response = await refresh(h, refreshToken);
  assert.equal(response.status, 401, `${why}: ${await response.clone().text()}`);
  await assertProblem(response, 401, "AUTH.REFRESH_TOKEN_INVALID");
}

/** The family's tokens: how many, how many revoked, how many still exchangeable (neither used nor revoked). */
async function family(h: Harness): Promise<{ families: number; tokens: number; revoked: number; live: number }> {
  const [row] = await h.sql.query<{ families: number; tokens: number; revoked: number; live: number }>`
    select count(distinct family_id)::int as families, count(*)::int as tokens, count(revoked_at)::int as revoked,
      count(*) filter (where used_at is null and revoked_at is null)::int as live
    from auth_refresh_tokens`;
  return row;
}

testOnBothDatabases(
  "a refresh retried within the grace window gets a working pair in the same family; the lost answer's token is dead",
  async (h) => {
    const signedUp = await h.signup("ria@example.com");
    const lost = await refreshed(h, signedUp.refreshToken); // the answer that never reached the client
    h.clock.nowMs += 5_000; // the forwarder's timeout, then the client's retry

    const retried = await refreshed(h, signedUp.refreshToken);
    assert.equal(decodeJwt(retried.accessToken).email, "ria@example.com");
    assert.notEqual(retried.refreshToken, lost.refreshToken);
    const next = await refreshed(h, retried.refreshToken);
    assert.deepEqual(await family(h), { families: 1, tokens: 4, revoked: 0, live: 1 }, "one sign-in, still alive");
    assert.equal((await h.get("/whoami", next.accessToken)).status, 200);

    // The successor the lost answer carried was replaced by the retry's: whoever presents it now holds a token
    // the client never got, so it is reuse and the family goes.
    await refused(h, lost.refreshToken, "the replaced successor");
    await refused(h, next.refreshToken, "the family after the replaced successor came back");
  },
);

testOnBothDatabases("a refresh retried after the grace window revokes the family, as reuse", async (h) => {
  const signedUp = await h.signup("sam@example.com");
  const successor = await refreshed(h, signedUp.refreshToken);
  h.clock.nowMs += GRACE_MS + 1;
  await refused(h, signedUp.refreshToken, "the retry past the window");
  await refused(h, successor.refreshToken, "the successor of a revoked family");
  assert.deepEqual(await family(h), { families: 1, tokens: 2, revoked: 2, live: 0 });
});

testOnBothDatabases("a replay after the successor was used revokes the family, even within the window", async (h) => {
  const signedUp = await h.signup("tao@example.com");
  const successor = await refreshed(h, signedUp.refreshToken);
  const latest = await refreshed(h, successor.refreshToken);
  await refused(h, signedUp.refreshToken, "a replay of a token whose successor was used");
  await refused(h, latest.refreshToken, "the family after the replay");
});

testOnBothDatabases("a second replay of the same token revokes the family", async (h) => {
  const signedUp = await h.signup("uma@example.com");
  await refreshed(h, signedUp.refreshToken);
  const retried = await refreshed(h, signedUp.refreshToken);
  await refused(h, signedUp.refreshToken, "the second replay");
  await refused(h, retried.refreshToken, "the retry's successor, once the family is revoked");
  assert.equal((await family(h)).live, 0);
});

testOnBothDatabases(
  "with a grace window of 0 every replay is reuse",
  async (h) => {
    const signedUp = await h.signup("val@example.com");
    const successor = await refreshed(h, signedUp.refreshToken);
    await refused(h, signedUp.refreshToken, "a replay without a window");
    await refused(h, successor.refreshToken, "the successor of a revoked family");
  },
  () => ({ refreshReuseGraceMs: 0 }),
);

testOnBothDatabases("a refresh token used before the window's column existed is not replayable", async (h) => {
  // A token rotated by the old code (no successor on record): its replay stays reuse.
  const signedUp = await h.signup("wes@example.com");
  const successor = await refreshed(h, signedUp.refreshToken);
  await h.sql.query`update auth_refresh_tokens set replaced_by = null`;
  await refused(h, signedUp.refreshToken, "a replay with no successor on record");
  await refused(h, successor.refreshToken, "the successor of a revoked family");
});

/**
 * `sql` whose transactions each pause after their first statement (the refresh's `select … for update`) until
 * `parties` transactions have got there, or `waitMs` has passed: so racing refreshes really overlap. Without row
 * locks every one of them passes its read before any writes; with them, the later ones wait in the database and
 * the first goes on alone once `waitMs` is up.
 */
function pausingAfterFirstStatement(sql: Sql, parties: number, waitMs: number): Sql {
  let arrived = 0;
  let release = () => {};
  const everyone = new Promise<void>((resolve) => release = resolve);
  const pause = async () => {
    if (++arrived >= parties) release();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([everyone, new Promise((resolve) => timer = setTimeout(resolve, waitMs))]);
    clearTimeout(timer);
  };
  return {
    query: (strings, ...values) => sql.query(strings, ...values),
    exec: (statements) => sql.exec(statements),
    ping: (timeoutMs) => sql.ping(timeoutMs),
    close: () => sql.close(),
    transaction: (fn) =>
      sql.transaction((tx) => {
        let first = true;
        return fn({
          exec: (statements) => tx.exec(statements),
          async query<T extends Row = Row>(strings: TemplateStringsArray, ...values: SqlValue[]): Promise<T[]> {
            const rows = await tx.query<T>(strings, ...values);
            if (first) {
              first = false;
              await pause();
            }
            return rows;
          },
        });
      }),
  };
}

/** Refreshes `tokens` at once, overlapping (above); resolves how many were answered and how many tokens are live. */
async function race(h: Harness, tokens: string[]): Promise<{ answered: number; live: number }> {
  const service = overlappingService(h, tokens.length);
  const results = await Promise.allSettled(tokens.map((token) => service.refresh(token)));
  for (const result of results) {
    if (result.status === "rejected") assert.equal((result.reason as ProblemError).code, "AUTH.REFRESH_TOKEN_INVALID");
  }
  return { answered: results.filter((result) => result.status === "fulfilled").length, live: (await family(h)).live };
}

/** A token service on `h`'s database whose transactions overlap (`pausingAfterFirstStatement`, `parties`). */
function overlappingService(h: Harness, parties: number) {
  const now = () => h.clock.nowMs;
  return createTokenService({
    sql: pausingAfterFirstStatement(h.sql, parties, 500),
    keys: createSigningKeyStore({ sql: h.sql, now, accessTokenTtlSec: 900 }),
    issuer: ISSUER,
    audience: AUDIENCE,
    accessTokenTtlSec: 900,
    now,
  });
}

Deno.test("[postgres] a retry racing a logout of its family: no deadlock, and the family ends revoked", async () => {
  await onPostgres(async (h) => {
    const signedUp = await h.signup("zoe@example.com");
    await refreshed(h, signedUp.refreshToken);
    // The retry locks the replayed token, then its successor; the logout's update meets the successor first (the
    // replayed token's updated row lies after it). Without one lock per family ahead of both they could deadlock, and
    // the logout's update, not seeing the retry's new token, left it unrevoked (refused only by its family's mark).
    const service = overlappingService(h, 2);
    const [retry, logout] = await Promise.allSettled([
      service.refresh(signedUp.refreshToken),
      service.revokeFamily(signedUp.refreshToken),
    ]);
    assert.equal(logout.status, "fulfilled", logout.status === "rejected" ? String(logout.reason) : "");
    if (retry.status === "rejected") {
      assert.equal((retry.reason as ProblemError).code, "AUTH.REFRESH_TOKEN_INVALID", String(retry.reason));
    }
    assert.equal((await family(h)).live, 0);
  });
});

Deno.test("[postgres] two concurrent retries of one token: one is answered, and no branch survives", async () => {
  await onPostgres(async (h) => {
    const signedUp = await h.signup("xia@example.com");
    await refreshed(h, signedUp.refreshToken);
    // Serialised on the replayed token's row lock: the first is the one retry, the second a second replay, which
    // revokes the family (the first one's pair with it). Rejected: answering both with one successor (its plaintext
    // would have to be stored) and refusing the second without revoking (a thief's replay looks the same).
    assert.deepEqual(await race(h, [signedUp.refreshToken, signedUp.refreshToken]), { answered: 1, live: 0 });
  });
});

Deno.test("[postgres] a retry racing the use of its successor leaves no live branch", async () => {
  await onPostgres(async (h) => {
    const signedUp = await h.signup("yan@example.com");
    const successor = await refreshed(h, signedUp.refreshToken);
    // The successor's rotation holds its row; the retry waits for it, then finds it used: reuse, the family goes.
    assert.deepEqual(await race(h, [signedUp.refreshToken, successor.refreshToken]), { answered: 1, live: 0 });
  });
});

Deno.test("createTokenService() refuses a grace window that is not an integer in 0..300000 ms", () => {
  for (const refreshReuseGraceMs of [-1, 1.5, 300_001, Number.NaN]) {
    assert.throws(
      () =>
        createTokenService({
          sql: {} as never,
          keys: {} as never,
          issuer: "i",
          audience: "a",
          accessTokenTtlSec: 900,
          refreshReuseGraceMs,
          now: () => START_MS,
        }),
      RangeError,
      String(refreshReuseGraceMs),
    );
  }
});
