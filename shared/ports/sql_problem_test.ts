import assert from "node:assert/strict";
import { Hono } from "hono";
import { createPostgresSql } from "../adapters/postgres/mod.ts";
import { installProblemHandlers } from "../http/problem_response.ts";
import { createTestDatabase } from "../testing/pg_database.ts";
import type { Sql } from "./sql.ts";
import { problemOfSqlFailure } from "./sql_problem.ts";
import { SqlError } from "./sql_values.ts";

/** An app whose one route runs `work`, answering its failure the way every service's routes do. */
function appRunning(work: () => Promise<unknown>): Hono {
  const app = new Hono();
  installProblemHandlers(app);
  app.get("/work", async (c) => c.json(await work()));
  return app;
}

/** Runs `work` with the log's warn and error lines (JSON on stderr) captured; resolves with both. */
async function capturingLog<T>(
  work: () => Promise<T>,
): Promise<{ lines: Record<string, unknown>[]; answers: T }> {
  const lines: Record<string, unknown>[] = [];
  const original = console.error;
  console.error = (line: unknown) => void lines.push(JSON.parse(String(line)));
  try {
    return { answers: await work(), lines };
  } finally {
    console.error = original;
  }
}

async function problemOf(response: Response): Promise<{ code: string; status: number; detail: string }> {
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  return await response.json();
}

Deno.test({
  name:
    "[postgres] a statement past statement_timeout, a lock not available or a deadlock answers 503 with Retry-After",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql: Sql = createPostgresSql({ url: db.url, maxConnections: 2 });
    try {
      const timedOut = appRunning(() =>
        sql.transaction(async (tx) => {
          await tx.exec("set local statement_timeout = '50ms'");
          return await tx.query`select pg_sleep(1)`;
        })
      );
      const slow = await timedOut.request("/work");
      assert.equal(slow.status, 503);
      assert.equal(slow.headers.get("retry-after"), "5", "a heavy statement would time out again at once");
      const body = await problemOf(slow);
      assert.equal(body.code, "COMMON.UPSTREAM_UNAVAILABLE");
      assert.doesNotMatch(body.detail, /statement timeout|57014/, "the driver's message is not leaked");

      await sql.exec("create table locked (id int primary key); insert into locked values (1)");
      const held = Promise.withResolvers<void>();
      const locked = Promise.withResolvers<void>();
      const holder = sql.transaction(async (tx) => {
        await tx.query`select id from locked where id = 1 for update`;
        locked.resolve();
        await held.promise;
      });
      await locked.promise;
      let error: unknown;
      const contended = await appRunning(() =>
        sql.transaction((tx) => tx.query`select id from locked where id = 1 for update nowait`).catch((e) => {
          error = e;
          throw e;
        })
      ).request("/work");
      held.resolve();
      await holder;
      assert.ok(error instanceof SqlError && error.code === "55P03", String(error));
      assert.equal(contended.status, 503);
      assert.equal(contended.headers.get("retry-after"), "1");
      assert.equal((await problemOf(contended)).code, "COMMON.UPSTREAM_UNAVAILABLE");

      // Two transactions that lock the same rows in opposite orders: PostgreSQL aborts one (40P01).
      await sql.exec("insert into locked values (2)");
      const [firstLocked, secondLocked] = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
      const lockInOrder = (first: number, second: number, mine: PromiseWithResolvers<void>, other: Promise<void>) =>
        sql.transaction(async (tx) => {
          await tx.query`select id from locked where id = ${first} for update`;
          mine.resolve();
          await other;
          await tx.query`select id from locked where id = ${second} for update`;
        });
      const { lines, answers } = await capturingLog(() =>
        Promise.all([
          appRunning(() => lockInOrder(1, 2, firstLocked, secondLocked.promise)).request("/work"),
          appRunning(() => lockInOrder(2, 1, secondLocked, firstLocked.promise)).request("/work"),
        ])
      );
      const deadlocked = answers.filter((answer) => answer.status !== 200);
      assert.equal(deadlocked.length, 1, "PostgreSQL aborts one of the two");
      assert.equal(deadlocked[0].status, 503);
      assert.equal(deadlocked[0].headers.get("retry-after"), "1");
      const logged = lines.find((line) => line.sqlstate === "40P01");
      assert.equal(logged?.level, "error", "a deadlock is a lock-order bug, logged as an error");

      // A failure that recurs on every try is still a 500.
      const duplicate = appRunning(() => sql.query`insert into locked values (1)`);
      const dup = await duplicate.request("/work");
      assert.equal(dup.status, 500);
      assert.equal((await problemOf(dup)).code, "COMMON.INTERNAL");
    } finally {
      await sql.close();
      await db.drop();
    }
  },
});

Deno.test("problemOfSqlFailure() maps the SQLSTATEs a request may retry; a statement timeout waits longer", () => {
  const retryable = ["40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300", "08000", "08003", "08006"];
  for (const code of [...retryable, "57014"]) {
    const problem = problemOfSqlFailure(new SqlError("x", code));
    assert.equal(problem?.code, "COMMON.UPSTREAM_UNAVAILABLE", code);
    assert.equal(problem?.status, 503);
    assert.equal(problem?.headers?.["retry-after"], code === "57014" ? "5" : "1", code);
  }
});

Deno.test("problemOfSqlFailure() leaves a failure that needs an operator or recurs on every try a 500", () => {
  // Classes a consumer waits out (disk full, object not in prerequisite state, deferred constraint at COMMIT,
  // undefined file), idle or transaction timeouts, a protocol violation, constraints, an aborted transaction.
  const permanent = ["53100", "53200", "40002", "40003", "55000", "55006", "58P01", "58030", "25P03", "25P04"];
  for (const code of [...permanent, "08P01", "23505", "25P02"]) {
    assert.equal(problemOfSqlFailure(new SqlError("x", code)), undefined, code);
  }
  const coded = Object.assign(new Error("canceling statement due to statement timeout"), { code: "57014" });
  for (const error of [new Error("57014"), coded, { code: "40P01" }, undefined]) {
    assert.equal(problemOfSqlFailure(error), undefined, "only the SQL port's errors carry a trusted SQLSTATE");
  }
});

Deno.test("a deadlock answers 503, logged as an error with its stack; a statement timeout waits 5 s", async () => {
  const failing = (code: string) => appRunning(() => Promise.reject(new SqlError(`failed with ${code}`, code)));
  const { lines, answers } = await capturingLog(() =>
    Promise.all(["40P01", "57014", "55P03"].map((code) => failing(code).request("/work")))
  );
  assert.deepEqual(answers.map((answer) => [answer.status, answer.headers.get("retry-after")]), [
    [503, "1"],
    [503, "5"],
    [503, "1"],
  ]);
  const bySqlstate = new Map(lines.map((line) => [line.sqlstate, line]));
  assert.equal(bySqlstate.get("40P01")?.level, "error");
  assert.match(String(bySqlstate.get("40P01")?.stack), /failed with 40P01/);
  assert.equal(bySqlstate.get("57014")?.level, "warn");
  assert.equal(bySqlstate.get("57014")?.stack, undefined);
  assert.equal(bySqlstate.get("55P03")?.level, "warn");
});

Deno.test("a full disk (53100) or a deferred constraint failing at COMMIT (40002) answers 500, not 503", async () => {
  for (const code of ["53100", "40002"]) {
    const { answers: [answer] } = await capturingLog(() =>
      Promise.all([appRunning(() => Promise.reject(new SqlError("x", code))).request("/work")])
    );
    assert.equal(answer.status, 500, code);
    assert.equal(answer.headers.get("retry-after"), null, code);
    assert.equal((await problemOf(answer)).code, "COMMON.INTERNAL", code);
  }
});
