/**
 * The SCD2 price history stays a chain of intervals, each starting where the one before it ends, when price
 * changes overlap on PostgreSQL; and migration 002 repairs the rows that older code wrote out of order, then
 * refuses an interval that ends before it starts, on PGlite and on PostgreSQL — except in a replica region,
 * where a check would stall logical replication of a writer still on the old code.
 */
import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { migrate, type Migration } from "../../../shared/ports/sql_migrate.ts";
import { SqlError } from "../../../shared/ports/sql_values.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { cartMigrations } from "../cart/mod.ts";
import { inventoryMigrations } from "../inventory/mod.ts";
import { ordersMigrations } from "../orders/mod.ts";
import { orderWriterMigrations } from "../orders/writer/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { catalogMigrations, createCatalogRoutes } from "./mod.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** What is wrong with a product's history, in id order (the order the rows were written in); [] when nothing. */
async function historyFaults(sql: Sql, productId: string): Promise<string[]> {
  const rows = await sql.query<
    { id: string; inverted: boolean; unchained: boolean; backwards: boolean; overtakes: boolean }
  >`
    select id::text as id,
           coalesce(valid_to < valid_from, false) as inverted,
           coalesce(valid_from < lag(valid_from) over (order by id), false) as overtakes,
           valid_to is distinct from lead(valid_from) over (order by id) as unchained,
           coalesce(valid_from < lag(valid_to) over (order by id), false) as backwards
    from product_price_history where product_id = ${productId}::uuid order by id`;
  return rows.flatMap((r) => [
    ...(r.inverted ? [`row ${r.id} ends before it starts`] : []),
    ...(r.unchained ? [`row ${r.id} does not end where the next row starts`] : []),
    ...(r.backwards ? [`row ${r.id} starts before the row before it ended`] : []),
    ...(r.overtakes ? [`row ${r.id} starts before the row before it started`] : []),
  ]);
}

/** `sql`, whose next transaction stops after its first statement (so its `now()` is fixed) until released. */
function pausingNextTransaction(sql: Sql) {
  let pause: { begun: PromiseWithResolvers<void>; release: PromiseWithResolvers<void> } | undefined;
  const paused: Sql = {
    ...sql,
    transaction: (fn) =>
      sql.transaction(async (tx) => {
        const p = pause;
        pause = undefined;
        if (p) {
          await tx.query`select now()`;
          p.begun.resolve();
          await p.release.promise;
        }
        return await fn(tx);
      }),
  };
  return {
    sql: paused,
    pauseNext() {
      const p = { begun: Promise.withResolvers<void>(), release: Promise.withResolvers<void>() };
      pause = p;
      return { begun: p.begun.promise, release: () => p.release.resolve() };
    },
  };
}

Deno.test({
  ...opts,
  name: "[postgres] a price change that began first but took the product's lock second keeps the history a chain",
  fn: async () => {
    const db = await createTestDatabase();
    const base = createPostgresSql({ url: db.url });
    try {
      await migrate(base, [...outboxMigrations, ...catalogMigrations]);
      const { sql, pauseNext } = pausingNextTransaction(base);
      const tokens = await createTestTokens();
      const app = createCatalogRoutes({
        sql,
        cache: createMemoryCache(),
        verifier: tokens.verifier,
        nudgeOutbox: () => {},
      });
      const headers = {
        authorization: `Bearer ${await tokens.token("admin", ["ADMIN"])}`,
        "content-type": "application/json",
      };
      const send = (method: string, path: string, body: unknown) =>
        app.request(path, { method, headers, body: JSON.stringify(body) });
      const created = await send("POST", "/api/v1/products", {
        sku: `HIST-${crypto.randomUUID()}`,
        name: "Lamp",
        category: "home",
        price: "10.00",
        currency: "EUR",
      });
      assert.equal(created.status, 201, await created.clone().text());
      const { id } = await created.json();

      // B begins first and waits before its row lock; A begins after it, locks, and commits first.
      const paused = pauseNext();
      const b = send("PATCH", `/api/v1/products/${id}`, { price: "30.00" });
      await paused.begun;
      const a = await send("PATCH", `/api/v1/products/${id}`, { price: "20.00" });
      assert.equal(a.status, 200, await a.clone().text());
      paused.release();
      const bDone = await b;
      assert.equal(bDone.status, 200, await bDone.clone().text());

      assert.deepEqual(await historyFaults(base, id), []);
      const history = await (await app.request(`/api/v1/products/${id}/price-history`)).json();
      assert.deepEqual(history.items.map((r: { price: string }) => r.price), ["30.00", "20.00", "10.00"]);
      assert.equal(history.items[0].validTo, null);
    } finally {
      await base.close();
      await db.drop();
    }
  },
});

/** Runs `scenario` on a fresh database of each adapter, migrated with `before` (up to catalog migration 001). */
function onEachAdapter(
  name: string,
  scenario: (sql: Sql) => Promise<void>,
  before: readonly Migration[] = [...outboxMigrations, catalogMigrations[0]],
) {
  Deno.test({
    ...opts,
    name: `[pglite] ${name}`,
    fn: async () => {
      const sql = await createPgliteSql();
      try {
        await migrate(sql, before);
        await scenario(sql);
      } finally {
        await sql.close();
      }
    },
  });
  Deno.test({
    ...opts,
    name: `[postgres] ${name}`,
    fn: async () => {
      const db = await createTestDatabase();
      const sql = createPostgresSql({ url: db.url });
      try {
        await migrate(sql, before);
        await scenario(sql);
      } finally {
        await sql.close();
        await db.drop();
      }
    },
  });
}

// Bound as text: postgres.js turns a timestamptz parameter into a Date, which has no microseconds.
const T0 = "2024-05-01 10:00:00+00";
const T1 = "2024-05-01 11:00:00+00";
const T2 = "2024-05-01 11:00:00.000001+00";

/** A product with the rows the old code wrote when a change that began at T1 took the lock after one of T2. */
async function productWithRaceHistory(sql: Sql): Promise<string> {
  const id = crypto.randomUUID();
  await sql.query`
    insert into products (id, sku, name, category, price, currency)
    values (${id}::uuid, ${`RACE-${id}`}, 'Lamp', 'home', 20.00, 'EUR')`;
  for (
    const [price, from, to] of [["10.00", T0, T2], ["30.00", T2, T1], ["20.00", T1, null]] as const
  ) {
    await sql.query`
      insert into product_price_history (product_id, price, currency, valid_from, valid_to, changed_by)
      values (${id}::uuid, ${price}::numeric, 'EUR', ${from}::text::timestamptz, ${to}::text::timestamptz, 'admin')`;
  }
  return id;
}

async function intervalsOf(sql: Sql, id: string): Promise<[string, string, string | null][]> {
  const rows = await sql.query<{ price: string; from: string; to: string | null }>`
    select price::text as price, (valid_from at time zone 'UTC')::text as from, (valid_to at time zone 'UTC')::text as to
    from product_price_history where product_id = ${id}::uuid order by id`;
  return rows.map((r) => [r.price, r.from, r.to]);
}

onEachAdapter(
  "migration 002 repairs inverted and overlapping price rows, then refuses an interval that ends before it starts",
  async (sql) => {
    const raced = await productWithRaceHistory(sql);
    const clean = crypto.randomUUID();
    await sql.query`
      insert into products (id, sku, name, category, price, currency)
      values (${clean}::uuid, ${`CLEAN-${clean}`}, 'Desk', 'home', 5.00, 'EUR')`;
    await sql.query`
      insert into product_price_history (product_id, price, currency, valid_from, valid_to, changed_by)
      values (${clean}::uuid, 4.00, 'EUR', ${T0}::text::timestamptz, ${T1}::text::timestamptz, 'admin'),
             (${clean}::uuid, 5.00, 'EUR', ${T1}::text::timestamptz, null, 'admin')`;
    assert.notDeepEqual(await historyFaults(sql, raced), []);

    await migrate(sql, catalogMigrations);

    assert.deepEqual(await historyFaults(sql, raced), []);
    // The row opened at T2 was replaced by the change that took the lock next: its real end is lost.
    assert.deepEqual(await intervalsOf(sql, raced), [
      ["10.00", "2024-05-01 10:00:00", "2024-05-01 11:00:00.000001"],
      ["30.00", "2024-05-01 11:00:00.000001", "2024-05-01 11:00:00.000001"],
      ["20.00", "2024-05-01 11:00:00.000001", null],
    ]);
    assert.deepEqual(await intervalsOf(sql, clean), [
      ["4.00", "2024-05-01 10:00:00", "2024-05-01 11:00:00"],
      ["5.00", "2024-05-01 11:00:00", null],
    ]);
    const inverted = await sql.query`
      insert into product_price_history (product_id, price, currency, valid_from, valid_to, changed_by)
      values (${clean}::uuid, 1.00, 'EUR', ${T1}::text::timestamptz, ${T0}::text::timestamptz, 'admin')`.then(
      () => null,
      (e) => e,
    );
    assert.ok(inverted instanceof SqlError, String(inverted));
    assert.equal(inverted.code, "23514");
    const [{ validated }] = await sql.query<{ validated: boolean }>`
      select convalidated as validated from pg_constraint where conname = 'product_price_history_valid_range'`;
    assert.equal(validated, true);
  },
);

/**
 * A region's database just before catalog 002: the migrations the wiring applies, order_writer and the guard
 * triggers of the replicated tables included (a rolling deploy upgrades such a database).
 */
const BEFORE_002 = [
  ...outboxMigrations,
  catalogMigrations[0],
  ...cartMigrations,
  ...inventoryMigrations,
  ...ordersMigrations,
  ...orderWriterMigrations,
];

async function validRange(sql: Sql): Promise<"absent" | "validated" | "not validated"> {
  const [row] = await sql.query<{ validated: boolean }>`
    select convalidated as validated from pg_constraint where conname = 'product_price_history_valid_range'`;
  return row === undefined ? "absent" : row.validated ? "validated" : "not validated";
}

/** Writes an interval that ends before it starts, as logical replication's apply worker applies a row. */
function applyInvertedRowAsReplication(sql: Sql, productId: string): Promise<unknown> {
  return sql.transaction(async (tx) => {
    // The apply worker's role: ordinary triggers (the order-writer guard) do not fire; constraints still do.
    await tx.exec("set local session_replication_role = replica");
    await tx.query`
      insert into product_price_history (product_id, price, currency, valid_from, valid_to, changed_by)
      values (${productId}::uuid, 1.00, 'EUR', ${T1}::text::timestamptz, ${T0}::text::timestamptz, 'old writer')`;
  }).then(() => null, (e) => e);
}

onEachAdapter(
  "in a replica region (order_writer names another writer) migration 002 adds no check, so replication never stalls",
  async (sql) => {
    const raced = await productWithRaceHistory(sql);
    await sql.query`insert into order_writer (local_region, writer_region) values ('east', 'west')`;
    await migrate(sql, catalogMigrations);
    assert.equal(await validRange(sql), "absent");
    assert.equal((await intervalsOf(sql, raced))[1][2], "2024-05-01 11:00:00", "left for the writer to repair");
    // A writer still on the old code replicates an inverted row: the replica applies it instead of failing
    // its apply worker on every retry (which stalls every replicated table, orders included).
    assert.equal(await applyInvertedRowAsReplication(sql, raced), null);
  },
  BEFORE_002,
);

for (const [role, writer] of [["the writer region", "east"], ["a standalone region (no row)", undefined]] as const) {
  onEachAdapter(
    `in ${role} migration 002 repairs the rows and checks every row, replicated or not`,
    async (sql) => {
      const raced = await productWithRaceHistory(sql);
      if (writer) await sql.query`insert into order_writer (local_region, writer_region) values ('east', ${writer})`;
      await migrate(sql, catalogMigrations);
      assert.equal(await validRange(sql), "validated");
      assert.deepEqual(await historyFaults(sql, raced), []);
      const inverted = await applyInvertedRowAsReplication(sql, raced);
      assert.ok(inverted instanceof SqlError, String(inverted));
      assert.equal(inverted.code, "23514");
    },
    BEFORE_002,
  );
}
