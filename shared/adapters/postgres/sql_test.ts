import assert from "node:assert/strict";
import { sqlContract } from "../../ports/contract/sql_contract.ts";
import { createTestDatabase } from "../../testing/pg_database.ts";
import { createPostgresSql } from "./mod.ts";

// One database per run of this file, dropped by the last test below (tests of a file run in order).
const database = await createTestDatabase();

sqlContract(
  "postgres",
  () => {
    const sql = createPostgresSql({
      url: database.url,
      maxConnections: 5,
      connectTimeoutSec: 5,
      statementTimeoutMs: 10_000,
    });
    return Promise.resolve({ sql, cleanup: () => sql.close() });
  },
  (bounds) => {
    // Two connections: enough to show every one of a real pool is held, few enough to hold cheaply.
    const connections = 2;
    const sql = createPostgresSql({ url: database.url, maxConnections: connections, ...bounds });
    return Promise.resolve({ sql, connections, cleanup: () => sql.close() });
  },
);

Deno.test("[postgres] sql statementTimeoutMs cancels a statement on the server (SQLSTATE 57014)", async () => {
  const sql = createPostgresSql({ url: database.url, maxConnections: 1, statementTimeoutMs: 200 });
  try {
    await assert.rejects(sql.query`select pg_sleep(2)`, { code: "57014" });
    assert.deepEqual(await sql.query`select 1 as one`, [{ one: 1 }], "the connection is usable afterwards");
  } finally {
    await sql.close();
  }
});

Deno.test("[postgres] sql idleInTransactionTimeoutMs ends a transaction left idle; the pool recovers", async () => {
  // The file's database is unique to this run, so a fixed table name is isolated.
  const table = "idle_tx";
  const setup = createPostgresSql({ url: database.url, maxConnections: 1 });
  const sql = createPostgresSql({ url: database.url, maxConnections: 1, idleInTransactionTimeoutMs: 300 });
  try {
    await setup.exec(`create table ${table} (id int primary key)`);
    // The transaction's code stalls past the bound between two statements: the server ends the session,
    // and the transaction rejects without waiting for the stalled code.
    // Handed over once the stalled code has made its next statement (wrapped: a promise resolved with a promise
    // would be flattened). Waiting on it, not on a fixed time, keeps a loaded machine's late timer from passing the
    // check with no statement made yet.
    let made: (next: { insert: Promise<unknown> }) => void = () => {};
    const secondInsert = new Promise<{ insert: Promise<unknown> }>((resolve) => made = resolve);
    const started = performance.now();
    await assert.rejects(
      sql.transaction(async (tx) => {
        await tx.exec(`insert into ${table} (id) values (1)`);
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        const insert = tx.exec(`insert into ${table} (id) values (2)`);
        made({ insert });
        await insert;
      }),
    );
    assert.ok(performance.now() - started < 1_400, "rejected at the server's bound, not after the stall");
    assert.deepEqual(await setup.query`select count(*)::int as n from idle_tx`, [{ n: 0 }], "rolled back");
    // The one pooled connection was replaced: the pool still works, and a quick transaction commits.
    await sql.transaction(async (tx) => {
      await tx.exec(`insert into ${table} (id) values (3)`);
    });
    assert.deepEqual(await setup.query`select id from idle_tx`, [{ id: 3 }]);
    // The stalled code's next statement fails too, instead of running outside any transaction.
    await assert.rejects((await secondInsert).insert);
    assert.deepEqual(await setup.query`select id from idle_tx`, [{ id: 3 }]);
  } finally {
    await sql.close();
    await setup.exec(`drop table if exists ${table}`).finally(() => setup.close());
  }
});

Deno.test("[postgres] sql ping() rejects when the server cannot be reached", async () => {
  const sql = createPostgresSql({ url: "postgres://postgres@127.0.0.1:1/none", connectTimeoutSec: 1 });
  try {
    await assert.rejects(sql.ping(3_000));
  } finally {
    await sql.close();
  }
});

Deno.test("[postgres] sql test database is dropped at the end of the file", async () => {
  await database.drop();
});
