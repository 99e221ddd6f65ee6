/**
 * @module
 * A test bench for the order routes over any SQL adapter: migrations of every context they read, products
 * seeded in the catalog's table, in-memory stock and payments, test tokens and a small request helper.
 */
import type { Hono } from "hono";
import type { Role } from "../../../shared/auth/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { cartMigrations, createCartRoutes } from "../cart/mod.ts";
import { catalogMigrations } from "../catalog/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { createMemoryStock, createScriptedPayments, type MemoryStock, type ScriptedPayments } from "./_test_doubles.ts";
import { createOrderRoutes, ordersMigrations } from "./mod.ts";

export interface Bench {
  readonly sql: Sql;
  readonly app: Hono;
  readonly carts: Hono;
  readonly stock: MemoryStock;
  readonly payments: ScriptedPayments;
  readonly tokens: TestTokens;
  /** How many times the routes nudged the outbox relay. */
  readonly nudges: () => number;
  /** Product ids by name: `apple` (USD 25.00, 10 in stock), `pear` (USD 1.50, 100), `euro` (EUR 3.00, 10). */
  readonly products: { readonly apple: string; readonly pear: string; readonly euro: string };
}

export async function migrateAll(sql: Sql): Promise<void> {
  await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...cartMigrations, ...ordersMigrations]);
}

/** Creates the bench on `sql` (migrated here) with fresh products, so several benches can share a database. */
export async function createBench(sql: Sql, options: { readonly stockTimeoutMs?: number } = {}): Promise<Bench> {
  await migrateAll(sql);
  const products = { apple: crypto.randomUUID(), pear: crypto.randomUUID(), euro: crypto.randomUUID() };
  const rows: [string, string, string, string][] = [
    [products.apple, "apple", "25.00", "USD"],
    [products.pear, "pear", "1.50", "USD"],
    [products.euro, "euro", "3.00", "EUR"],
  ];
  for (const [id, name, price, currency] of rows) {
    await sql.query`
      insert into products (id, sku, name, description, category, price, currency)
      values (${id}::uuid, ${`${name}-${id}`}, ${name}, '', 'fruit', ${price}::numeric, ${currency})`;
  }
  const stock = createMemoryStock({ [products.apple]: 10, [products.pear]: 100, [products.euro]: 10 });
  const payments = createScriptedPayments();
  const tokens = await createTestTokens();
  let nudges = 0;
  const app = createOrderRoutes({
    sql,
    verifier: tokens.verifier,
    stock,
    payments,
    nudgeOutbox: () => nudges++,
    reservationTtlSec: 60,
    stockTimeoutMs: options.stockTimeoutMs ?? 2_000,
    paymentTimeoutMs: 2_000,
  });
  const carts = createCartRoutes({ sql, verifier: tokens.verifier });
  return { sql, app, carts, stock, payments, tokens, nudges: () => nudges, products };
}

export interface Call {
  readonly method?: string;
  readonly user?: string;
  readonly roles?: readonly Role[];
  readonly key?: string | null;
  readonly body?: unknown;
  /** Sent as is (for malformed bodies). */
  readonly rawBody?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Sends one request to `app` as `user` (default "alice", CUSTOMER) with a fresh Idempotency-Key on POSTs. */
export async function call(bench: Bench, path: string, init: Call = {}, app: Hono = bench.app): Promise<Response> {
  const method = init.method ?? (init.body !== undefined || init.rawBody !== undefined ? "POST" : "GET");
  const headers: Record<string, string> = { ...init.headers };
  if (init.user !== "") headers.authorization = `Bearer ${await bench.tokens.token(init.user ?? "alice", init.roles)}`;
  const key = init.key === undefined ? (method === "POST" ? crypto.randomUUID() : null) : init.key;
  if (key !== null) headers["idempotency-key"] = key;
  let body: string | undefined = init.rawBody;
  if (init.body !== undefined) body = JSON.stringify(init.body);
  if (body !== undefined && !headers["content-type"]) headers["content-type"] = "application/json";
  return await app.request(path, { method, headers, body });
}

/** The event types in the outbox for `orderId`, oldest first. */
export async function eventsOf(sql: Sql, orderId: string): Promise<string[]> {
  const rows = await sql.query<{ topic: string }>`
    select topic from outbox where partition_key = ${orderId} order by id`;
  return rows.map((r) => r.topic);
}

/** The payloads in the outbox for `orderId`, oldest first. */
export async function payloadsOf(sql: Sql, orderId: string): Promise<Record<string, unknown>[]> {
  const rows = await sql.query<
    { envelope: string }
  >`select envelope from outbox where partition_key = ${orderId} order by id`;
  return rows.map((r) => JSON.parse(r.envelope).payload);
}

/** The status history of an order as `FROM>TO` strings, oldest first. */
export async function historyOf(sql: Sql, orderId: string): Promise<string[]> {
  const rows = await sql.query<{ from_status: string | null; to_status: string }>`
    select from_status, to_status from order_status_history where order_id = ${orderId}::uuid order by id`;
  return rows.map((r) => `${r.from_status ?? "-"}>${r.to_status}`);
}
