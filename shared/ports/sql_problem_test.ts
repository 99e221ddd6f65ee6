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

async function problemOf(response: Response): Promise<{ code: string; status: number; detail: string }> {
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  return await response.json();
}

Deno.test({
  name: "[postgres] a statement past statement_timeout or a lock not available answers 503 with Retry-After",
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
      assert.equal(slow.headers.get("retry-after"), "1");
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

Deno.test("problemOfSqlFailure() maps the SQLSTATEs a consumer retries, and nothing else", () => {
  for (const code of ["57014", "55P03", "40001", "40P01", "53300", "57P01", "25P03", "25P04", "08006"]) {
    const problem = problemOfSqlFailure(new SqlError("x", code));
    assert.equal(problem?.code, "COMMON.UPSTREAM_UNAVAILABLE", code);
    assert.equal(problem?.status, 503);
    assert.equal(problem?.headers?.["retry-after"], "1");
  }
  for (const error of [new SqlError("x", "23505"), new SqlError("x", "25P02"), new Error("57014"), undefined]) {
    assert.equal(problemOfSqlFailure(error), undefined, String(error));
  }
});
