/**
 * @module
 * The contract every SQL adapter passes: bind parameters, identical value types, transactions, SQLSTATE
 * codes, migrations, serialised concurrent transactions and, through `sql_pool_contract.ts`, the bounds on
 * waiting for a connection. Each test uses its own table names.
 */

import assert from "node:assert/strict";
import type { Sql, SqlExecutor } from "../sql.ts";
import { migrate } from "../sql_migrate.ts";
import { SqlError } from "../sql_values.ts";
import { uniqueName } from "../../testing/unique.ts";
import { type MakeBoundedSql, sqlPoolContract } from "./sql_pool_contract.ts";

/** Builds template strings around dynamic identifiers (table names cannot be bind parameters). */
function tpl(...parts: string[]): TemplateStringsArray {
  return Object.assign([...parts], { raw: [...parts] });
}

/** Makes a connected port and the function that releases it. */
export type MakeSql = () => Promise<{ sql: Sql; cleanup: () => Promise<void> }>;

/**
 * Registers the SQL contract tests, named `[kind] sql …`. `makeBoundedSql` makes the port the pool tests
 * saturate (see `sql_pool_contract.ts`).
 */
export function sqlContract(kind: string, makeSql: MakeSql, makeBoundedSql: MakeBoundedSql): void {
  const test = (name: string, body: (sql: Sql) => Promise<void>) =>
    Deno.test({
      name: `[${kind}] sql ${name}`,
      // Pools and WASM instances outlive one test on purpose (one per file); the suite closes them itself.
      sanitizeOps: false,
      sanitizeResources: false,
      async fn() {
        const { sql, cleanup } = await makeSql();
        try {
          await body(sql);
        } finally {
          await cleanup();
        }
      },
    });

  test("query() sends values as parameters, never as SQL text", async (sql) => {
    const table = uniqueName("t_inject");
    await sql.exec(`create table ${table} (name text)`);
    const hostile = `x'); drop table ${table}; --`;
    await sql.query(tpl(`insert into ${table} (name) values (`, ")"), hostile);
    const rows = await sql.query<{ name: string }>(
      tpl(`select name from ${table} where name = `, ""),
      hostile,
    );
    assert.deepEqual(rows, [{ name: hostile }]);
  });

  test("query() returns the same JavaScript values on every adapter", async (sql) => {
    const rows = await sql.query`
      select 7::int4 as int4, 32767::int2 as int2, ${"9007199254740993"}::int8 as int8,
        ${"12345678901234567890.125"}::numeric as numeric, 1.5::float8 as float8, ${"héllo"}::text as text,
        ${true}::boolean as yes, false as no, ${new Date("2024-05-06T07:08:09.123Z")}::timestamptz as at,
        ${{ a: [1, "two", null], b: { c: true } }}::jsonb as doc, ${new Uint8Array([
      0,
      1,
      254,
      255,
    ])}::bytea as bytes,
        ${null}::text as nothing, array[1, 2, 3]::int4[] as ints, array[9007199254740993, 1]::int8[] as bigs,
        ${["a", "b,c", 'd"e']}::text[] as texts, '{"k": "v"}'::json as plain_json`;
    assert.deepEqual(rows, [{
      int4: 7,
      int2: 32767,
      int8: "9007199254740993",
      numeric: "12345678901234567890.125",
      float8: 1.5,
      text: "héllo",
      yes: true,
      no: false,
      at: new Date("2024-05-06T07:08:09.123Z"),
      doc: { a: [1, "two", null], b: { c: true } },
      bytes: new Uint8Array([0, 1, 254, 255]),
      nothing: null,
      ints: [1, 2, 3],
      bigs: ["9007199254740993", "1"],
      texts: ["a", "b,c", 'd"e'],
      plain_json: { k: "v" },
    }]);
    assert.equal(Object.getPrototypeOf(rows[0].bytes), Uint8Array.prototype, "bytea is a plain Uint8Array");
  });

  test("transaction() commits when the function resolves", async (sql) => {
    const table = uniqueName("t_commit");
    await sql.exec(`create table ${table} (id int primary key)`);
    const result = await sql.transaction(async (tx) => {
      await tx.exec(`insert into ${table} values (1)`);
      await tx.exec(`insert into ${table} values (2)`);
      return "done";
    });
    assert.equal(result, "done");
    const rows = await sql.query(tpl(`select count(*)::int as n from ${table}`));
    assert.deepEqual(rows, [{ n: 2 }]);
  });

  test("transaction() rolls back when the function throws and leaves no row", async (sql) => {
    const table = uniqueName("t_rollback");
    await sql.exec(`create table ${table} (id int primary key)`);
    await assert.rejects(
      sql.transaction(async (tx) => {
        await tx.exec(`insert into ${table} values (1)`);
        throw new Error("boom");
      }),
      { message: "boom" },
    );
    const rows = await sql.query(tpl(`select count(*)::int as n from ${table}`));
    assert.deepEqual(rows, [{ n: 0 }]);
  });

  test("a statement on a transaction that has ended rejects and never runs outside it", async (sql) => {
    const table = uniqueName("t_ended");
    await sql.exec(`create table ${table} (id int primary key)`);
    let kept: SqlExecutor | undefined;
    await sql.transaction(async (tx) => {
      kept = tx;
      await tx.exec(`insert into ${table} values (1)`);
    });
    await assert.rejects(kept!.exec(`insert into ${table} values (2)`));
    await assert.rejects(kept!.query(tpl(`insert into ${table} values (3)`)));
    let rolledBack: SqlExecutor | undefined;
    await assert.rejects(sql.transaction(async (tx) => {
      rolledBack = tx;
      await tx.exec(`insert into ${table} values (5)`);
      throw new Error("boom");
    }));
    await assert.rejects(rolledBack!.exec(`insert into ${table} values (4)`));
    const rows = await sql.query(tpl(`select id from ${table} order by id`));
    assert.deepEqual(rows, [{ id: 1 }]);
  });

  test("a unique violation rejects with SqlError code 23505", async (sql) => {
    const table = uniqueName("t_unique");
    await sql.exec(`create table ${table} (id int constraint ${table}_pk primary key)`);
    await sql.exec(`insert into ${table} values (1)`);
    const insert = () => sql.query(tpl(`insert into ${table} values (`, ")"), 1);
    await assert.rejects(insert(), (error: unknown) => {
      assert.ok(error instanceof SqlError, `expected SqlError, got ${error}`);
      assert.equal(error.code, "23505");
      assert.equal(error.detail?.constraint, `${table}_pk`);
      return true;
    });
    await assert.rejects(
      sql.transaction((tx) => tx.exec(`insert into ${table} values (1)`)),
      (error: unknown) => error instanceof SqlError && error.code === "23505",
    );
  });

  test("migrate() applies each migration once and is idempotent on re-run", async (sql) => {
    const table = uniqueName("t_migr");
    const migrations = [
      {
        id: `${table}_1`,
        sql: `create table ${table} (id int primary key); insert into ${table} values (1);`,
      },
      { id: `${table}_2`, sql: `alter table ${table} add column note text` },
    ];
    assert.deepEqual(await migrate(sql, migrations), [`${table}_1`, `${table}_2`]);
    assert.deepEqual(await migrate(sql, migrations), []);
    const both = await Promise.all([migrate(sql, migrations), migrate(sql, migrations)]);
    assert.deepEqual(both, [[], []]);
    const more = [...migrations, { id: `${table}_3`, sql: `insert into ${table} values (3)` }];
    assert.deepEqual(await migrate(sql, more), [`${table}_3`]);
    const rows = await sql.query(tpl(`select id from ${table} order by id`));
    assert.deepEqual(rows, [{ id: 1 }, { id: 3 }]);
    await assert.rejects(
      migrate(sql, [{ id: `${table}_bad`, sql: "select * from no_such_table" }]),
      (error: unknown) => error instanceof SqlError && error.code === "42P01",
    );
    const recorded = await sql.query`select id from schema_migrations where id = ${`${table}_bad`}`;
    assert.deepEqual(recorded, [], "a failed migration is not recorded");
  });

  test("concurrent transactions incrementing a counter end with the exact count", async (sql) => {
    const table = uniqueName("t_counter");
    await sql.exec(
      `create table ${table} (id int primary key, n int not null); insert into ${table} values (1, 0)`,
    );
    const increments = 20;
    await Promise.all(
      Array.from({ length: increments }, () =>
        sql.transaction(async (tx) => {
          const [{ n }] = await tx.query<{ n: number }>(
            tpl(`select n from ${table} where id = 1 for update`),
          );
          await tx.query(tpl(`update ${table} set n = `, " where id = 1"), n + 1);
        })),
    );
    const rows = await sql.query(tpl(`select n from ${table}`));
    assert.deepEqual(rows, [{ n: increments }]);
  });

  test("ping() resolves while the database is up", async (sql) => {
    await sql.ping(2_000);
  });

  sqlPoolContract(kind, makeBoundedSql);
}
