import assert from "node:assert/strict";
import { sqlContract } from "../../ports/contract/sql_contract.ts";
import { createTestDatabase } from "../../testing/pg_database.ts";
import { createPostgresSql } from "./mod.ts";

// One database per run of this file, dropped by the last test below (tests of a file run in order).
const database = await createTestDatabase();

sqlContract("postgres", () => {
  const sql = createPostgresSql({
    url: database.url,
    maxConnections: 5,
    connectTimeoutSec: 5,
    statementTimeoutMs: 10_000,
  });
  return Promise.resolve({ sql, cleanup: () => sql.close() });
});

Deno.test("[postgres] sql statementTimeoutMs cancels a statement on the server (SQLSTATE 57014)", async () => {
  const sql = createPostgresSql({ url: database.url, maxConnections: 1, statementTimeoutMs: 200 });
  try {
    await assert.rejects(sql.query`select pg_sleep(2)`, { code: "57014" });
    assert.deepEqual(await sql.query`select 1 as one`, [{ one: 1 }], "the connection is usable afterwards");
  } finally {
    await sql.close();
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
