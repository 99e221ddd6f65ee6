import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { orderWriterMigrations, REPLICATED_TABLES } from "../../ecommerce/orders/writer/mod.ts";
import { writerGuardMigrationSql } from "./writer_guard_sql.ts";

const guarded = { id: "test_guarded_001", sql: "create table guarded (id int primary key)" };
/** E-commerce's writer migrations with stand-ins for the tables they guard (its full schema is not the point). */
const ecommerceWriter = [
  { id: "test_commerce_tables", sql: REPLICATED_TABLES.map((t) => `create table ${t} (id int);`).join("\n") },
  ...orderWriterMigrations,
];

Deno.test("writerGuardMigrationSql() guards a service that migrates before e-commerce; e-commerce then migrates too", async () => {
  const sql = await createPgliteSql();
  try {
    await migrate(sql, [guarded, { id: "test_guarded_002", sql: writerGuardMigrationSql(["guarded"]) }]);
    // No row: a standalone region writes.
    await sql.exec("insert into guarded values (1)");
    // E-commerce's own writer migration finds the row's table and the function made here, and applies.
    assert.deepEqual(await migrate(sql, ecommerceWriter), [
      "test_commerce_tables",
      "ecommerce-order-writer-001",
      "ecommerce-order-writer-002",
    ]);
    await sql.exec("insert into order_writer (local_region, writer_region) values ('west', 'east')");
    await assert.rejects(sql.exec("insert into guarded values (2)"), (error: unknown) => {
      assert.match(String(error), /read-only in this region: region "east"/);
      return true;
    });
    await sql.exec("update order_writer set writer_region = 'west'");
    await sql.exec("insert into guarded values (2)");
  } finally {
    await sql.close();
  }
});

Deno.test("writerGuardMigrationSql() leaves an existing guard function as it is", async () => {
  const sql = await createPgliteSql();
  try {
    await migrate(sql, ecommerceWriter);
    // A later definition (as a future e-commerce migration might make) must survive a service migrating after it.
    await sql.exec(`
      create or replace function bv_order_writer_guard() returns trigger language plpgsql as $$
      begin raise exception 'redefined' using errcode = 'read_only_sql_transaction'; end $$;`);
    await migrate(sql, [guarded, { id: "test_guarded_002", sql: writerGuardMigrationSql(["guarded"]) }]);
    await assert.rejects(sql.exec("insert into guarded values (1)"), /redefined/);
  } finally {
    await sql.close();
  }
});

Deno.test("writerGuardMigrationSql() refuses a name it cannot splice into DDL", () => {
  assert.throws(() => writerGuardMigrationSql(["guarded; drop table x"]), TypeError);
  assert.throws(() => writerGuardMigrationSql([]), RangeError);
});
