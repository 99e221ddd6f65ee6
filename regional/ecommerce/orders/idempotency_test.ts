import assert from "node:assert/strict";
import { Hono } from "hono";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { type AuthEnv, requireAuth } from "../../../shared/auth/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { installProblemHandlers } from "../../../shared/http/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { canonicalJson, idempotencyMiddleware, ordersMigrations, purgeExpiredIdempotencyKeys } from "./mod.ts";

const HOUR_MS = 60 * 60 * 1000;

/** A tiny app whose handler counts its runs and answers what the test asks for. */
function appOf(sql: Sql, tokens: TestTokens, clock: { now: Date }) {
  let runs = 0;
  let gate: Promise<void> | undefined;
  const app = new Hono<AuthEnv>();
  installProblemHandlers(app as unknown as Hono);
  const idem = idempotencyMiddleware({ sql, now: () => clock.now, inFlightLeaseMs: 60_000 });
  app.post("/things/:outcome", requireAuth(tokens.verifier), idem, async (c) => {
    const run = ++runs;
    if (gate) await gate;
    const outcome = c.req.param("outcome");
    if (outcome === "boom") throw new Error("unexpected");
    if (outcome === "unavailable") throw new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", "Try later");
    if (outcome === "conflict") throw new ProblemError("COMMON.CONFLICT", `Conflict number ${run}`);
    return c.json({ run, body: await c.req.json() }, 202, { "x-custom": `run-${run}`, "set-cookie": "a=b" });
  });
  return {
    app,
    runs: () => runs,
    /** Requests from now on run without waiting; those already waiting keep waiting. */
    unblockNew: () => {
      gate = undefined;
    },
    hold: () => {
      let open!: () => void;
      gate = new Promise<void>((resolve) => open = resolve);
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

async function send(
  app: Hono<AuthEnv>,
  tokens: TestTokens,
  path: string,
  options: { key?: string; body?: string; user?: string },
): Promise<Response> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${await tokens.token(options.user ?? "alice")}`,
    "content-type": "application/json",
  };
  if (options.key !== undefined) headers["idempotency-key"] = options.key;
  return await app.request(path, { method: "POST", headers, body: options.body ?? "{}" });
}

async function withPglite(fn: (sql: Sql) => Promise<void>): Promise<void> {
  const sql = await createPgliteSql();
  try {
    await migrate(sql, ordersMigrations);
    await fn(sql);
  } finally {
    await sql.close();
  }
}

Deno.test({
  name: "idempotencyMiddleware() replays status, headers and body of a stored response, 4xx included",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPglite(async (sql) => {
      const tokens = await createTestTokens();
      const clock = { now: new Date("2026-01-01T00:00:00Z") };
      const { app, runs } = appOf(sql, tokens, clock);
      const first = await send(app, tokens, "/things/ok", { key: "k1", body: '{"a":1,"b":[1,2]}' });
      const firstBody = await first.text();
      assert.equal(first.status, 202);
      const replay = await send(app, tokens, "/things/ok", { key: '"k1"', body: '{"b":[1,2],  "a":1}' });
      assert.equal(replay.status, 202);
      assert.equal(await replay.text(), firstBody);
      assert.equal(replay.headers.get("x-custom"), "run-1");
      assert.equal(replay.headers.get("set-cookie"), "a=b");
      assert.equal(replay.headers.get("idempotent-replayed"), "true");
      assert.equal(runs(), 1);

      const conflict = await send(app, tokens, "/things/conflict", { key: "k2" });
      const conflictBody = await conflict.text();
      assert.equal(conflict.status, 409);
      const conflictReplay = await send(app, tokens, "/things/conflict", { key: "k2" });
      assert.equal(await conflictReplay.text(), conflictBody, "a 4xx is an answer: replayed, not re-run");
      assert.equal(conflictReplay.headers.get("content-type"), "application/problem+json");
      assert.equal(runs(), 2);

      // Array order is meaning: a reordered array is another request.
      const reordered = await send(app, tokens, "/things/ok", { key: "k1", body: '{"a":1,"b":[2,1]}' });
      assert.equal(reordered.status, 422);
      assert.equal((await reordered.json()).code, "ECOMMERCE.IDEMPOTENCY_KEY_REUSED");
      const otherPath = await send(app, tokens, "/things/conflict", { key: "k1", body: '{"a":1,"b":[1,2]}' });
      assert.equal(otherPath.status, 422);
    }),
});

Deno.test({
  name: "idempotencyMiddleware() replays a request whose path is spelled with percent-escapes: it is the same request",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPglite(async (sql) => {
      const tokens = await createTestTokens();
      const clock = { now: new Date("2026-01-01T00:00:00Z") };
      const { app, runs } = appOf(sql, tokens, clock);
      const first = await send(app, tokens, "/things/ok", { key: "k1", body: '{"a":1}' });
      assert.equal(first.status, 202);
      const firstBody = await first.text();
      // Both reach the route of /things/ok (Hono routes on the decoded path); a retry may be spelled either way.
      for (const path of ["/things/%6Fk", "/%74hings/%6f%6B"]) {
        const replay = await send(app, tokens, path, { key: "k1", body: '{"a":1}' });
        assert.equal(replay.status, 202, path);
        assert.equal(await replay.text(), firstBody, path);
        assert.equal(replay.headers.get("idempotent-replayed"), "true", path);
      }
      assert.equal(runs(), 1);
      // The first request may be the escaped one, too.
      const escaped = await send(app, tokens, "/things/%63onflict", { key: "k2" });
      assert.equal(escaped.status, 409);
      const plain = await send(app, tokens, "/things/conflict", { key: "k2" });
      assert.equal(plain.status, 409);
      assert.equal(plain.headers.get("idempotent-replayed"), "true");
      assert.equal(runs(), 2);
      // A path that decodes to another route is still another request.
      const other = await send(app, tokens, "/things/%63onflict", { key: "k1", body: '{"a":1}' });
      assert.equal(other.status, 422);
      assert.equal((await other.json()).code, "ECOMMERCE.IDEMPOTENCY_KEY_REUSED");
    }),
});

Deno.test({
  name: "idempotencyMiddleware() treats a key as new after 24 h and frees a stale in-flight claim after its lease",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPglite(async (sql) => {
      const tokens = await createTestTokens();
      const clock = { now: new Date("2026-01-01T00:00:00Z") };
      const { app, runs } = appOf(sql, tokens, clock);
      await send(app, tokens, "/things/ok", { key: "day" });
      clock.now = new Date(clock.now.getTime() + 24 * HOUR_MS - 1);
      assert.equal((await send(app, tokens, "/things/ok", { key: "day" })).headers.get("idempotent-replayed"), "true");
      clock.now = new Date(clock.now.getTime() + 1);
      const fresh = await send(app, tokens, "/things/ok", { key: "day", body: '{"different":true}' });
      assert.equal(fresh.status, 202, "an expired key is a new key, even with another payload");
      assert.equal(fresh.headers.get("idempotent-replayed"), null);
      assert.equal(runs(), 2);

      // A claim left behind by a process that died mid-request.
      await sql.query`
        insert into idempotency_keys (user_id, key, request_hash, status, created_at, expires_at)
        values ('alice', 'orphan', 'x', 'in_flight', ${clock.now}, ${new Date(clock.now.getTime() + 24 * HOUR_MS)})`;
      assert.equal((await send(app, tokens, "/things/ok", { key: "orphan" })).status, 422);
      clock.now = new Date(clock.now.getTime() + 60_000);
      assert.equal((await send(app, tokens, "/things/ok", { key: "orphan" })).status, 202);

      assert.equal(await purgeExpiredIdempotencyKeys(sql, { now: new Date(clock.now.getTime() + 25 * HOUR_MS) }), 2);

      // More expired keys than one statement deletes: one call takes them all, a batch at a time.
      for (let i = 0; i < 5; i++) {
        await sql.query`
          insert into idempotency_keys (user_id, key, request_hash, status, created_at, expires_at)
          values ('bob', ${`old-${i}`}, 'x', 'completed', ${clock.now}, ${clock.now})`;
      }
      await send(app, tokens, "/things/ok", { key: "live" });
      const purged = await purgeExpiredIdempotencyKeys(sql, {
        now: clock.now,
        bounds: { batch: 2, statementsMax: 10 },
      });
      assert.equal(purged, 5);
      const left = await sql.query<{ key: string }>`select key from idempotency_keys order by key`;
      assert.deepEqual(left.map((row) => row.key), ["live"]);
    }),
});

Deno.test({
  name: "idempotencyMiddleware() never lets a request that outlived its lease overwrite the newer claim",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPglite(async (sql) => {
      const tokens = await createTestTokens();
      const clock = { now: new Date("2026-01-01T00:00:00Z") };
      const { app, runs, hold, unblockNew } = appOf(sql, tokens, clock);
      const openSlow = hold();
      const slow = send(app, tokens, "/things/ok", { key: "slow" });
      while (runs() === 0) await new Promise((r) => setTimeout(r, 5));
      unblockNew();
      clock.now = new Date(clock.now.getTime() + 60_000);
      const takeover = await send(app, tokens, "/things/ok", { key: "slow" });
      assert.equal((await takeover.json()).run, 2);
      openSlow();
      assert.equal((await (await slow).json()).run, 1);
      const replay = await send(app, tokens, "/things/ok", { key: "slow" });
      assert.equal(replay.headers.get("idempotent-replayed"), "true");
      assert.equal((await replay.json()).run, 2, "the stored answer is the newer claim's");
    }),
});

Deno.test({
  name: "idempotencyMiddleware() releases the key after a 5xx or a thrown error, so the retry runs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPglite(async (sql) => {
      const tokens = await createTestTokens();
      const { app, runs } = appOf(sql, tokens, { now: new Date() });
      assert.equal((await send(app, tokens, "/things/unavailable", { key: "u" })).status, 503);
      assert.equal((await send(app, tokens, "/things/unavailable", { key: "u" })).status, 503);
      assert.equal((await send(app, tokens, "/things/boom", { key: "b" })).status, 500);
      assert.equal((await send(app, tokens, "/things/boom", { key: "b" })).status, 500);
      assert.equal(runs(), 4, "every 5xx attempt ran again");
      assert.equal((await sql.query`select 1 from idempotency_keys`).length, 0);
    }),
});

Deno.test({
  name: "idempotencyMiddleware() refuses bad keys and oversized bodies before running the handler",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPglite(async (sql) => {
      const tokens = await createTestTokens();
      const { app, runs } = appOf(sql, tokens, { now: new Date() });
      const cases: [string | undefined, string, number, string][] = [
        [undefined, "{}", 400, "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED"],
        ["   ", "{}", 400, "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED"],
        ["a".repeat(256), "{}", 400, "COMMON.VALIDATION_FAILED"],
        ["tab\there", "{}", 400, "COMMON.VALIDATION_FAILED"],
        ["big", JSON.stringify({ pad: "x".repeat(1024 * 1024) }), 413, "COMMON.PAYLOAD_TOO_LARGE"],
      ];
      for (const [key, body, status, code] of cases) {
        const response = await send(app, tokens, "/things/ok", { key, body });
        assert.equal(response.status, status, String(key).slice(0, 20));
        assert.equal((await response.json()).code, code);
      }
      assert.equal((await send(app, tokens, "/things/ok", { key: "a".repeat(255) })).status, 202);
      assert.equal(runs(), 1);
    }),
});

Deno.test("canonicalJson() sorts object keys at every depth and keeps array order", () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }),
    '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
  );
  assert.equal(canonicalJson("é"), '"é"');
});

Deno.test("idempotencyMiddleware() fails at setup without a SQL port or with a lease longer than the TTL", () => {
  assert.throws(() => idempotencyMiddleware({} as never), /requires options.sql/);
  const sql = { query: () => Promise.resolve([]) } as unknown as Sql;
  assert.throws(() => idempotencyMiddleware({ sql, ttlMs: 1000, inFlightLeaseMs: 2000 }), RangeError);
});

Deno.test({
  name: "[postgres] idempotencyMiddleware() runs the handler once for 20 concurrent requests with one key",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url });
    try {
      await migrate(sql, ordersMigrations);
      const tokens = await createTestTokens();
      const { app, runs, hold } = appOf(sql, tokens, { now: new Date() });
      const open = hold();
      let settled = 0;
      const all = Array.from({ length: 20 }, () =>
        send(app, tokens, "/things/ok", { key: "race" }).then((r) => {
          settled++;
          return r;
        }));
      const started = Date.now();
      while (settled < 19 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 5));
      assert.equal(settled, 19, "all but the winner answered while the winner is held");
      open();
      const statuses = (await Promise.all(all)).map((r) => r.status).sort();
      assert.deepEqual(statuses, [202, ...Array(19).fill(409)]);
      const after = await Promise.all(
        Array.from({ length: 5 }, () => send(app, tokens, "/things/ok", { key: "race" })),
      );
      assert.deepEqual(after.map((r) => r.headers.get("idempotent-replayed")), Array(5).fill("true"));
      assert.equal(runs(), 1);
    } finally {
      await sql.close();
      await db.drop();
    }
  },
});
