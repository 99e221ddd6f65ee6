/**
 * @module
 * A test bench for the order routes over any SQL adapter: migrations of every context they read, products
 * seeded in the catalog's table, in-memory stock and payments, test tokens and a small request helper.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import type { Role } from "../../../shared/auth/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { cartMigrations, createCartRoutes } from "../cart/mod.ts";
import { catalogMigrations } from "../catalog/mod.ts";
import type { SalePrices } from "../contracts.ts";
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
  /** Replaces the routes' flash-sale source (none by default: list prices). */
  setSalePrices(source: SalePrices): void;
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
  let salePrices: SalePrices = () => Promise.resolve(new Map());
  const app = createOrderRoutes({
    sql,
    verifier: tokens.verifier,
    stock,
    payments,
    nudgeOutbox: () => nudges++,
    salePrices: (ids) => salePrices(ids),
    reservationTtlSec: 60,
    stockTimeoutMs: options.stockTimeoutMs ?? 2_000,
    paymentTimeoutMs: 2_000,
  });
  const carts = createCartRoutes({ sql, verifier: tokens.verifier });
  const setSalePrices = (source: SalePrices) => salePrices = source;
  return { sql, app, carts, stock, payments, tokens, nudges: () => nudges, products, setSalePrices };
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

export const CREATED = "ecommerce.order.order.created.v1";
export const PAID = "ecommerce.order.order.paid.v1";
export const CANCELED = "ecommerce.order.order.canceled.v1";
export const FULFILLED = "ecommerce.order.order.fulfilled.v1";

/** Asserts a problem+json answer with `status` and `code`; resolves with its body. */
export async function problem(response: Response, status: number, code: string): Promise<Record<string, unknown>> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const body = JSON.parse(text);
  assert.equal(body.code, code, text);
  return body;
}

/** Asserts a 201 and resolves with the order. */
export async function created(response: Response): Promise<Record<string, unknown> & { id: string; status: string }> {
  const text = await response.text();
  assert.equal(response.status, 201, text);
  return JSON.parse(text);
}

/** Places an order of `qty` apples as `user`; resolves with its id. */
export async function placeApples(bench: Bench, qty = 2, user = "alice"): Promise<string> {
  const order = await created(
    await call(bench, "/api/v1/orders", { user, body: { items: [{ productId: bench.products.apple, qty }] } }),
  );
  return order.id;
}

/** Pays `orderId` as `user`, asserting 200. */
export async function paid(bench: Bench, orderId: string, user = "alice"): Promise<void> {
  const response = await call(bench, `/api/v1/orders/${orderId}/pay`, { user, method: "POST" });
  assert.equal(response.status, 200, await response.clone().text());
}

/** Runs every scenario as a step, each on a fresh bench, on PGlite and on a fresh PostgreSQL database. */
async function runAll(
  t: Deno.TestContext,
  scenarios: Record<string, (bench: Bench) => Promise<void>>,
  sqlFactory: () => Promise<{ sql: Sql; close(): Promise<void> }>,
) {
  const { sql, close } = await sqlFactory();
  try {
    for (const [name, scenario] of Object.entries(scenarios)) {
      // A bench per scenario (fresh products and users' orders are cleared) on one shared database.
      await t.step(name, async () => {
        await sql.exec(
          "delete from idempotency_keys; delete from payments; delete from order_status_history;" +
            " delete from order_items; delete from orders; delete from outbox",
        ).catch(() => {});
        await scenario(await createBench(sql));
      });
    }
  } finally {
    await close();
  }
}

export function runOrderScenarios(
  label: string,
  scenarios: Record<string, (bench: Bench) => Promise<void>>,
): void {
  Deno.test({
    name: `[pglite] ${label}`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: (t) =>
      runAll(t, scenarios, async () => {
        const sql = await createPgliteSql();
        return { sql, close: () => sql.close() };
      }),
  });

  Deno.test({
    name: `[postgres] ${label}`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: (t) =>
      runAll(t, scenarios, async () => {
        const db = await createTestDatabase();
        const sql = createPostgresSql({ url: db.url });
        return {
          sql,
          close: async () => {
            await sql.close();
            await db.drop();
          },
        };
      }),
  });
}
