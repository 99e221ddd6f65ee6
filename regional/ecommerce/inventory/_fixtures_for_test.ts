/**
 * @module
 * Test support for the inventory tests: a migrated database (outbox, catalog, inventory, in the wiring's
 * order), products inserted straight into the catalog's table, and small polling helpers.
 */
import type { Sql, SqlExecutor } from "../../../shared/ports/sql.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { catalogMigrations } from "../catalog/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { applyStockAdjustment, inventoryMigrations } from "./mod.ts";

/** Applies the migrations inventory depends on, then its own. */
export async function migrateForInventory(sql: Sql): Promise<void> {
  await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...inventoryMigrations]);
}

/** Inserts a product row (the catalog's table) and resolves with its id and sku. */
export async function insertProduct(sql: SqlExecutor): Promise<{ id: string; sku: string }> {
  const id = crypto.randomUUID();
  const sku = uniqueName("SKU").toUpperCase().slice(0, 40);
  await sql.query`
    insert into products (id, sku, name, category, price, currency)
    values (${id}, ${sku}, ${"Test product"}, ${"test"}, ${"19.99"}, ${"USD"})`;
  return { id, sku };
}

/** A product with `onHand` units in stock (through an adjustment, as an admin would). */
export async function productWithStock(sql: Sql, onHand: number): Promise<{ id: string; sku: string }> {
  const product = await insertProduct(sql);
  await sql.transaction((tx) =>
    applyStockAdjustment(tx, { productId: product.id, delta: onHand, reason: "initial count", source: "test" })
  );
  return product;
}

/** The stock row of a product as plain numbers. */
export async function stockRow(sql: SqlExecutor, productId: string): Promise<{ onHand: number; reserved: number }> {
  const [row] = await sql.query<{ on_hand: number; reserved: number }>`
    select on_hand, reserved from inventory_stock where product_id = ${productId}`;
  return { onHand: row.on_hand, reserved: row.reserved };
}

/** The payloads of stock.adjusted events in the outbox for a product, oldest first. */
export async function outboxStockEvents(
  sql: SqlExecutor,
  productId: string,
): Promise<{ delta: number; reason: string; onHand: number; reserved: number }[]> {
  const rows = await sql.query<{ envelope: string }>`
    select envelope from outbox where topic = 'ecommerce.inventory.stock.adjusted.v1' and partition_key = ${productId}
    order by id`;
  return rows.map((r) => JSON.parse(r.envelope).payload);
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
