/**
 * @module
 * The part of the SQL contract about a saturated pool (`shared/ports/sql_permits.ts`): a caller that cannot get
 * a connection within `acquireTimeoutMs`, or finds `maxWaiting` callers already waiting, fails with
 * `COMMON.UPSTREAM_UNAVAILABLE` (503) and its statement never runs; a transaction's own statements never wait;
 * the pool serves again once connections free up. The pool is saturated by transactions that hold their
 * connection while they await a promise the test settles. PGlite has one connection, so there it is a pool of
 * one and the same tests hold.
 */

import assert from "node:assert/strict";
import { ProblemError } from "../../contracts/problem.ts";
import type { Sql } from "../sql.ts";
import type { SqlPoolBounds } from "../sql_permits.ts";
import { uniqueName } from "../../testing/unique.ts";

/** The bounds the pool tests need: a short deadline and a queue of two. */
export const POOL_CONTRACT_BOUNDS: Required<SqlPoolBounds> = Object.freeze({ acquireTimeoutMs: 200, maxWaiting: 2 });

/**
 * Makes a port with `bounds` and a small pool (every connection gets held); `connections` is its pool size.
 * It may be shared between the tests: each leaves every connection free.
 */
export type MakeBoundedSql = (
  bounds: Required<SqlPoolBounds>,
) => Promise<{ sql: Sql; connections: number; cleanup: () => Promise<void> }>;

/**
 * How long a test waits for an outcome the bounds promise within `acquireTimeoutMs` or at once: 25 times the
 * deadline. Without the bounds the caller waits in the driver until a connection frees, which these tests only
 * allow after it settled, so it would hang; this turns the hang into a failure that says so.
 */
const HANG_GUARD_MS = 5_000;

/** Builds template strings around dynamic identifiers (table names cannot be bind parameters). */
function tpl(...parts: string[]): TemplateStringsArray {
  return Object.assign([...parts], { raw: [...parts] });
}

/** Registers the pool tests, named `[kind] sql …`. */
export function sqlPoolContract(kind: string, makeBoundedSql: MakeBoundedSql): void {
  const test = (name: string, body: (sql: Sql, connections: number) => Promise<void>) =>
    Deno.test({
      name: `[${kind}] sql ${name}`,
      sanitizeOps: false,
      sanitizeResources: false,
      async fn() {
        const { sql, connections, cleanup } = await makeBoundedSql(POOL_CONTRACT_BOUNDS);
        try {
          await body(sql, connections);
        } finally {
          await cleanup();
        }
      },
    });

  test(
    "a caller that finds every connection held fails with COMMON.UPSTREAM_UNAVAILABLE after acquireTimeoutMs " +
      "and its statement never runs; the holders' own statements do not wait",
    async (sql, connections) => {
      const table = uniqueName("t_pool_wait");
      await sql.exec(`create table ${table} (id int primary key)`);
      const holders = await holdEveryConnection(sql, connections, table);
      try {
        const started = performance.now();
        const late = sql.query(tpl(`insert into ${table} values (0)`));
        await settlesWithin(assertUnavailable(late), "a caller waiting for a connection while all are held");
        // A loose lower bound, only to tell the deadline apart from an immediate refusal; no upper bound.
        const waitedMs = performance.now() - started;
        assert.ok(waitedMs >= POOL_CONTRACT_BOUNDS.acquireTimeoutMs / 2, `failed after ${waitedMs} ms, before waiting`);
      } finally {
        await holders.release();
      }
      // Each holder inserted its row through its transaction after the late caller gave up, while the pool was
      // still full: a transaction's statements run on its own connection and never wait for another.
      const rows = await sql.query<{ id: number }>(tpl(`select id from ${table} order by id`));
      assert.deepEqual(rows.map((row) => row.id), Array.from({ length: connections }, (_, i) => i + 1));
      // The late caller's insert (id 0) never ran, not even once connections freed up.
      assert.deepEqual(await sql.query`select 1 as one`, [{ one: 1 }], "the pool serves again");
      assert.deepEqual(await sql.query(tpl(`select count(*)::int as n from ${table} where id = 0`)), [{ n: 0 }]);
    },
  );

  test(
    "a caller that finds maxWaiting callers already waiting is refused at once; the pool serves again once " +
      "connections free up",
    async (sql, connections) => {
      const table = uniqueName("t_pool_full");
      await sql.exec(`create table ${table} (id int primary key)`);
      const holders = await holdEveryConnection(sql, connections, table);
      let waiting: Promise<unknown>[] = [];
      try {
        const settled: string[] = [];
        const note = (what: string, promise: Promise<unknown>) =>
          promise.then(() => settled.push(`${what} resolved`), () => settled.push(`${what} rejected`));
        waiting = Array.from(
          { length: POOL_CONTRACT_BOUNDS.maxWaiting },
          (_, i) => sql.query(tpl(`insert into ${table} values (`, ")"), -1 - i),
        );
        waiting.forEach((promise, i) => note(`waiting caller ${i}`, promise));
        const refused = sql.transaction((tx) => tx.query(tpl(`insert into ${table} values (-100)`)));
        note("refused caller", refused);
        await settlesWithin(assertUnavailable(refused), "a caller arriving when the wait queue is full");
        // Refused at once: the callers queued before it are still waiting (their deadline has not passed).
        assert.deepEqual(settled, ["refused caller rejected"]);
        // A ping goes ahead of the queue but still needs a connection: with every one held, it fails after the
        // bound like any caller (a busy pool with short statements answers it with the next free one).
        await settlesWithin(assertUnavailable(sql.ping(2_000)), "a ping arriving when the wait queue is full");
        for (const promise of waiting) {
          await settlesWithin(assertUnavailable(promise), "a queued caller whose deadline passed");
        }
      } finally {
        await holders.release();
        await Promise.allSettled(waiting);
      }
      await sql.ping(2_000);
      const inserted = await sql.transaction((tx) => tx.query(tpl(`insert into ${table} values (100) returning id`)));
      assert.deepEqual(inserted, [{ id: 100 }], "the pool serves again");
      const rows = await sql.query<{ id: number }>(tpl(`select id from ${table} where id <= 0`));
      assert.deepEqual(rows, [], "no refused or timed-out statement ran");
    },
  );
}

/**
 * Opens `connections` transactions that each run a statement, then hold their connection until `release()`;
 * each then inserts its own row (1…connections) into `table` through its transaction and commits.
 */
async function holdEveryConnection(
  sql: Sql,
  connections: number,
  table: string,
): Promise<{ release(): Promise<void> }> {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const started: Promise<void>[] = [];
  const transactions = Array.from({ length: connections }, (_, i) => {
    let markStarted!: () => void;
    started.push(new Promise<void>((resolve) => (markStarted = resolve)));
    return sql.transaction(async (tx) => {
      await tx.query`select 1`;
      markStarted();
      await gate;
      await tx.query(tpl(`insert into ${table} values (`, ")"), i + 1);
    });
  });
  const allHeld = Promise.race([Promise.all(started), Promise.all(transactions).then(() => {})]);
  await settlesWithin(allHeld, `${connections} transactions holding every connection`);
  return {
    async release() {
      open();
      await settlesWithin(Promise.all(transactions), "the holding transactions to commit");
    },
  };
}

async function assertUnavailable(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ProblemError, `expected a ProblemError, got ${error}`);
    assert.equal(error.code, "COMMON.UPSTREAM_UNAVAILABLE", error.message);
    assert.equal(error.status, 503);
    return true;
  });
}

/** `promise`, or a failure naming `what` when it is still pending after {@link HANG_GUARD_MS}. */
async function settlesWithin<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Still pending after ${HANG_GUARD_MS} ms: ${what} (unbounded wait for a connection?)`)),
      HANG_GUARD_MS,
    );
  });
  try {
    return await Promise.race([promise, hang]);
  } finally {
    clearTimeout(timer);
  }
}
