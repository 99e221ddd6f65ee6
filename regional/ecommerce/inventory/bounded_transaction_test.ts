import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import type { SqlExecutor } from "../../../shared/ports/sql.ts";
import { rejectsWithProblem } from "../../../shared/testing/assert_problem.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { boundedTransaction } from "./bounded_transaction.ts";

async function timeoutsOf(tx: SqlExecutor): Promise<Record<string, number>> {
  const rows = await tx.query<{ name: string; ms: number }>`
    select name, setting::int as ms from pg_settings where name in ('lock_timeout', 'statement_timeout')`;
  return Object.fromEntries(rows.map((r) => [r.name, r.ms]));
}

Deno.test({
  name: "[pglite] boundedTransaction() rolls back when its caller is gone before the commit",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    try {
      await sql.exec("create table notes (body text not null)");
      const controller = new AbortController();
      const late = boundedTransaction(sql, { signal: controller.signal }, async (tx) => {
        await tx.query`insert into notes (body) values (${"written for a caller who left"})`;
        controller.abort();
      });
      await rejectsWithProblem(late, "COMMON.UPSTREAM_TIMEOUT");
      let ran = false;
      const expired = boundedTransaction(sql, { deadlineAt: Date.now() - 1 }, () => Promise.resolve(ran = true));
      await rejectsWithProblem(expired, "COMMON.UPSTREAM_TIMEOUT");
      assert.equal(ran, false, "a deadline already past starts no transaction");
      await boundedTransaction(sql, { deadlineAt: Date.now() + 10_000 }, async (tx) => {
        await tx.query`insert into notes (body) values (${"kept"})`;
      });
      assert.deepEqual(await sql.query`select body from notes`, [{ body: "kept" }]);
    } finally {
      await sql.close();
    }
  },
});

Deno.test({
  name: "[postgres] boundedTransaction() lowers lock and statement timeouts to the time left, never raises them",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url, maxConnections: 2, statementTimeoutMs: 30_000 });
    try {
      const near = await boundedTransaction(sql, { deadlineAt: Date.now() + 2_000 }, timeoutsOf);
      assert.ok(near.lock_timeout > 1_000 && near.lock_timeout <= 2_000, `lock_timeout ${near.lock_timeout}`);
      assert.ok(near.statement_timeout > 1_000 && near.statement_timeout <= 2_000, `${near.statement_timeout}`);
      const far = await boundedTransaction(sql, { deadlineAt: Date.now() + 60_000 }, timeoutsOf);
      assert.equal(far.statement_timeout, 30_000, "the pool's own bound stays");
      assert.ok(far.lock_timeout > 59_000, `lock_timeout ${far.lock_timeout}`);
      // Set local: the next transaction on the connection has the pool's settings again.
      assert.deepEqual(await sql.transaction(timeoutsOf), { lock_timeout: 0, statement_timeout: 30_000 });
    } finally {
      await sql.close();
      await db.drop();
    }
  },
});
