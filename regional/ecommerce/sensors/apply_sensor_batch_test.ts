import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { metrics } from "../../../shared/observability/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { applySensorBatch } from "./apply_sensor_batch.ts";
import { deltaRecord, migrateForSensors, productWithStock, stockOf } from "./_fixture_for_test.ts";

async function stockAnnouncements(sql: Sql, productId: string): Promise<{ delta: number; onHand: number }[]> {
  const rows = await sql.query<{ envelope: string }>`
    select envelope from outbox where topic = 'ecommerce.inventory.stock.adjusted.v1' and partition_key = ${productId}
    order by id`;
  return rows.map((row) => JSON.parse(row.envelope).payload).map(({ delta, onHand }) => ({ delta, onHand }));
}

async function withDatabase(run: (sql: Sql) => Promise<void>): Promise<void> {
  const sql = await createPgliteSql();
  try {
    await migrateForSensors(sql);
    await run(sql);
  } finally {
    await sql.close();
  }
}

Deno.test("applySensorBatch() applies a batch once, skips repeated ids and rejects only the deltas that cannot apply", async () => {
  await withDatabase(async (sql) => {
    const a = await productWithStock(sql, 10);
    const b = await productWithStock(sql, 5);
    const batch = [
      deltaRecord(a.sku, "m1", -3),
      deltaRecord(b.sku, "m2", 4),
      deltaRecord(a.sku, "m1", -3), // the same reading twice in one fetch (an MQTT redelivery)
      deltaRecord(a.sku, "m3", -8), // 7 on hand: would go negative, rejected alone
      deltaRecord("NO-SUCH-SKU", "m4", 1),
      { ...deltaRecord(a.sku, "m5", 1), value: '{"not": "an envelope"}' },
      deltaRecord(a.sku, "m6", 2),
    ];
    const outcome = await applySensorBatch(sql, batch);
    assert.equal(outcome.applied, 3);
    assert.equal(outcome.duplicates, 1);
    assert.deepEqual(outcome.rejected.map((r) => r.error.code).sort(), [
      "COMMON.VALIDATION_FAILED",
      "ECOMMERCE.PRODUCT_NOT_FOUND",
      "ECOMMERCE.STOCK_NEGATIVE",
    ]);
    assert.match(outcome.rejected.find((r) => r.record.offset === batch[3].offset)!.error.message, /by -8: 7 on hand/);
    assert.deepEqual(await stockOf(sql, a.id), { onHand: 9, adjustments: 2 });
    assert.deepEqual(await stockOf(sql, b.id), { onHand: 9, adjustments: 1 });
    // One announcement per product per batch, with the net change and the final count (after the initial one).
    assert.deepEqual((await stockAnnouncements(sql, a.id)).slice(1), [{ delta: -1, onHand: 9 }]);
    assert.deepEqual((await stockAnnouncements(sql, b.id)).slice(1), [{ delta: 4, onHand: 9 }]);
  });
});

Deno.test("applySensorBatch() delivered again after a crash before the offset commit changes nothing", async () => {
  await withDatabase(async (sql) => {
    const product = await productWithStock(sql, 100);
    const batch = Array.from({ length: 50 }, (_, i) => deltaRecord(product.sku, `r-${i}`, i % 2 === 0 ? -1 : 2));
    assert.equal((await applySensorBatch(sql, batch)).applied, 50);
    const again = await applySensorBatch(sql, [...batch, deltaRecord(product.sku, "r-new", -5)]);
    assert.deepEqual({ applied: again.applied, duplicates: again.duplicates }, { applied: 1, duplicates: 50 });
    assert.deepEqual(await stockOf(sql, product.id), { onHand: 100 + 25 * -1 + 25 * 2 - 5, adjustments: 51 });
  });
});

Deno.test("applySensorBatch() rolls the whole batch back when the database fails mid-way", async () => {
  await withDatabase(async (sql) => {
    const product = await productWithStock(sql, 100);
    // Fails the statement that writes the ledger (after the stock rows were locked): nothing may stay.
    const failing: Sql = {
      ...sql,
      transaction: (fn) =>
        sql.transaction((tx) =>
          fn({
            exec: (text) => tx.exec(text),
            query: (strings, ...values) => {
              if (strings.join("").includes("insert into inventory_adjustment")) {
                return Promise.reject(new Error("connection lost"));
              }
              return tx.query(strings, ...values);
            },
          })
        ),
    };
    const batch = [deltaRecord(product.sku, "x1", -1), deltaRecord(product.sku, "x2", -1)];
    await assert.rejects(applySensorBatch(failing, batch), /connection lost/);
    assert.deepEqual(await stockOf(sql, product.id), { onHand: 100, adjustments: 0 });
    assert.equal((await applySensorBatch(sql, batch)).applied, 2);
    assert.deepEqual(await stockOf(sql, product.id), { onHand: 98, adjustments: 2 });
  });
});

Deno.test("applySensorBatch() creates the stock row of a product counted for the first time", async () => {
  await withDatabase(async (sql) => {
    const id = crypto.randomUUID();
    const sku = `NEW-${id.slice(0, 8)}`.toUpperCase();
    await sql.query`
      insert into products (id, sku, name, category, price, currency)
      values (${id}, ${sku}, ${"Never counted"}, ${"test"}, ${"1.00"}, ${"USD"})`;
    const outcome = await applySensorBatch(sql, [deltaRecord(sku, "first-1", 5), deltaRecord(sku, "first-2", -2)]);
    assert.equal(outcome.applied, 2);
    assert.deepEqual(await stockOf(sql, id), { onHand: 3, adjustments: 2 });
    assert.deepEqual(await stockAnnouncements(sql, id), [{ delta: 3, onHand: 3 }]);
  });
});

Deno.test("applySensorBatch() counts the duplicates it skips and logs their message ids", async () => {
  await withDatabase(async (sql) => {
    const product = await productWithStock(sql, 100);
    await applySensorBatch(sql, [deltaRecord(product.sku, "dup-1", -1)]);
    const before = await duplicatesCounted();
    const lines: string[] = [];
    const print = console.log;
    console.log = (line: string) => lines.push(line);
    try {
      await applySensorBatch(sql, [deltaRecord(product.sku, "dup-1", -1), deltaRecord(product.sku, "dup-2", -1)]);
    } finally {
      console.log = print;
    }
    // Not an error, but visible: on /metrics and in the log, with the id that was already applied.
    assert.equal(await duplicatesCounted() - before, 1);
    const logged = lines.map((line) => JSON.parse(line)).find((entry) => entry.msg.includes("already applied"));
    assert.ok(logged, `a log line for the duplicate, got: ${lines.join(" / ")}`);
    assert.equal(logged.level, "info");
    assert.deepEqual(logged.messageIds, ["dup-1"]);
  });
});

async function duplicatesCounted(): Promise<number> {
  const metric = metrics.registry.getSingleMetric("bv_sensor_delta_duplicates_total");
  return metric === undefined ? 0 : (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
}
