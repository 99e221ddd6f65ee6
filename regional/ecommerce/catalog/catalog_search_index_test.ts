/**
 * The trigram indexes of product text search (migration ecommerce-catalog-003): created on PGlite and on real
 * PostgreSQL, able to serve the very statement `listProducts` sends for `q`, and applied in a replica region too.
 */
import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import type { Row, Sql, SqlExecutor, SqlValue } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { cartMigrations } from "../cart/mod.ts";
import { inventoryMigrations } from "../inventory/mod.ts";
import { ordersMigrations } from "../orders/mod.ts";
import { orderWriterMigrations } from "../orders/writer/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { closeWorld, createProduct, opts, world } from "./_catalog_fixture.ts";
import { catalogMigrations, listProducts, type ProductFilter } from "./mod.ts";

const TRIGRAM_INDEXES = ["products_description_trgm", "products_name_trgm"];
const BEFORE_003 = catalogMigrations.filter((m) => m.id !== "ecommerce-catalog-003");

/** A region's database before catalog 003, as the wiring migrates it: order_writer and the write guards included. */
const REGION_BEFORE_003 = [
  ...outboxMigrations,
  ...BEFORE_003,
  ...cartMigrations,
  ...inventoryMigrations,
  ...ordersMigrations,
  ...orderWriterMigrations,
];

async function trigramIndexes(sql: Sql): Promise<string[]> {
  const rows = await sql.query<{ name: string }>`
    select indexname as name from pg_indexes
    where tablename = 'products' and indexdef like '%USING gin%gin_trgm_ops%' order by indexname`;
  return rows.map((r) => r.name);
}

/**
 * The plan PostgreSQL makes for the statement `listProducts(filter)` sends, parameters bound as it binds them:
 * the store runs against an executor that prefixes `explain`, inside a transaction that applies `settings` locally.
 */
async function planOfListing(sql: Sql, filter: ProductFilter, settings: string): Promise<string> {
  return await sql.transaction(async (tx) => {
    await tx.exec(settings);
    let plan = "";
    const explaining: SqlExecutor = {
      async query<T extends Row = Row>(strings: TemplateStringsArray, ...values: SqlValue[]): Promise<T[]> {
        const explained = Object.assign([`explain ${strings[0]}`, ...strings.slice(1)], {
          raw: [`explain ${strings.raw[0]}`, ...strings.raw.slice(1)],
        });
        const rows = await tx.query<Record<string, string>>(explained, ...values);
        plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
        return [];
      },
      exec: (statements) => tx.exec(statements),
    };
    await listProducts(explaining, filter);
    return plan;
  });
}

function assertBothIndexesServe(plan: string): void {
  for (const index of TRIGRAM_INDEXES) assert.match(plan, new RegExp(`Bitmap Index Scan on ${index}`), plan);
  assert.doesNotMatch(plan, /Seq Scan/, plan);
}

Deno.test({
  ...opts,
  name: "[pglite] products get trigram GIN indexes on name and description that serve the store's search query",
  fn: async () => {
    const w = await world();
    assert.deepEqual(await trigramIndexes(w.sql), TRIGRAM_INDEXES);
    const wanted = await createProduct(w, { name: "Quartzite kettle", description: "Holds 1.7 l" });
    await createProduct(w, { name: "Plain mug", description: "A quartzite glaze" });
    // A few rows: the planner would read the table whatever the indexes, so the other paths are priced out.
    const plan = await planOfListing(
      w.sql,
      { q: "quartzite" },
      "set local enable_seqscan = off; set local enable_indexscan = off",
    );
    assertBothIndexesServe(plan);
    const { items } = await listProducts(w.sql, { q: "QUARTZITE k" });
    assert.deepEqual(items.map((p) => p.id), [wanted.id], "the search answers as before");
  },
});

/** A replica region (order_writer names another writer) takes catalog 003, and stays a replica. */
async function replicaTakesTheIndexes(sql: Sql): Promise<void> {
  await migrate(sql, REGION_BEFORE_003);
  await sql.exec(`
    insert into products (id, sku, name, category, price, currency)
    values ('00000000-0000-4000-8000-000000000001', 'REPLICATED-1', 'Quartzite kettle', 'kitchen', 10, 'EUR');
    insert into order_writer (local_region, writer_region) values ('west', 'east');`);
  const applied = await migrate(sql, catalogMigrations);
  assert.deepEqual(applied, ["ecommerce-catalog-003"]);
  assert.deepEqual(await trigramIndexes(sql), TRIGRAM_INDEXES);
  assert.deepEqual((await listProducts(sql, { q: "quartz" })).items.map((p) => p.sku), ["REPLICATED-1"]);
  await assert.rejects(
    sql.query`update products set name = 'x'`,
    (error: Error & { code?: string }) => error.code === "25006",
    "still a replica: local writes are refused",
  );
}

Deno.test({
  ...opts,
  name: "[pglite] the trigram migration applies in a replica region, whose writer guard still refuses product writes",
  fn: async () => {
    const sql = await createPgliteSql();
    try {
      await replicaTakesTheIndexes(sql);
    } finally {
      await sql.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "[postgres] the trigram migration applies in a replica region, whose writer guard still refuses product writes",
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url, maxConnections: 2 });
    try {
      await replicaTakesTheIndexes(sql);
    } finally {
      await sql.close();
      await db.drop();
    }
  },
});

Deno.test({ ...opts, name: "close the catalog test database", fn: closeWorld });

Deno.test({
  name: "[postgres] the trigram indexes serve the store's search query on 20,000 products",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url, maxConnections: 2 });
    try {
      // The indexes are built over products already there, as on a live region's database. Deterministic rows,
      // and few enough that ANALYZE samples all of them: the same statistics every run.
      await migrate(sql, [...outboxMigrations, ...BEFORE_003]);
      await sql.exec(`
        insert into products (id, sku, name, description, category, price, currency)
        select md5(g::text)::uuid, 'SKU-' || lpad(g::text, 6, '0'),
               (array['Trail', 'Road', 'Winter'])[1 + g % 3] || ' shoe ' || md5(g::text),
               'Model ' || md5((g * 7)::text), 'shoes', 1 + g % 500, 'EUR'
        from generate_series(1, 20000) g;`);
      await migrate(sql, [...outboxMigrations, ...catalogMigrations]);
      assert.deepEqual(await trigramIndexes(sql), TRIGRAM_INDEXES);
      await sql.exec("analyze products");
      const needle = "a1b2c";
      const plan = await planOfListing(sql, { q: needle }, "set local enable_seqscan = off");
      assertBothIndexesServe(plan);
      const expected = await sql.query<{ sku: string }>`
        select sku from products where name ilike ${`%${needle}%`} or description ilike ${`%${needle}%`}
        order by sku limit 20`;
      assert.ok(expected.length > 0, "the needle is in some rows");
      const { items } = await listProducts(sql, { q: needle });
      assert.deepEqual(items.map((p) => p.sku), expected.map((r) => r.sku));
    } finally {
      await sql.close();
      await db.drop();
    }
  },
});
