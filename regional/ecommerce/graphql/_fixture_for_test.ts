/**
 * @module
 * Test support for the GraphQL tests: a migrated database (outbox, catalog, inventory, in the wiring's
 * order), a Sql port wrapper that counts statements, products and stock inserted straight into their
 * tables, and a `post()` that speaks GraphQL over HTTP to the Hono app.
 */
import type { Hono } from "hono";
import type { Cache } from "../../../shared/ports/cache.ts";
import type { Row, Sql, SqlExecutor, SqlValue } from "../../../shared/ports/sql.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { catalogMigrations } from "../catalog/mod.ts";
import { inventoryMigrations } from "../inventory/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { createGraphqlRoutes } from "./mod.ts";

export async function migrateForGraphql(sql: Sql): Promise<void> {
  await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...inventoryMigrations]);
}

/** A Sql port that counts every statement sent through it (queries, execs, statements in transactions). */
export function countingSql(inner: Sql): { sql: Sql; statements: () => number; reset: () => void } {
  let count = 0;
  const counted = (executor: SqlExecutor): SqlExecutor => ({
    query<T extends Row = Row>(strings: TemplateStringsArray, ...values: SqlValue[]) {
      count++;
      return executor.query<T>(strings, ...values);
    },
    exec(statements: string) {
      count++;
      return executor.exec(statements);
    },
  });
  const sql: Sql = {
    ...counted(inner),
    transaction: (fn) => inner.transaction((tx) => fn(counted(tx))),
    ping: (timeoutMs) => inner.ping(timeoutMs),
    close: () => inner.close(),
  };
  return { sql, statements: () => count, reset: () => void (count = 0) };
}

export interface TestProduct {
  readonly id: string;
  readonly sku: string;
  readonly name: string;
  readonly category: string;
  readonly price: string;
}

/** Inserts a product and, when `stock` is given, its stock row. */
export async function insertProduct(
  sql: SqlExecutor,
  fields: { category?: string; price?: string; name?: string; stock?: { onHand: number; reserved: number } } = {},
): Promise<TestProduct> {
  const product = {
    id: crypto.randomUUID(),
    sku: uniqueName("SKU").toUpperCase().slice(0, 40),
    name: fields.name ?? "Trail shoe",
    category: fields.category ?? "shoes",
    price: fields.price ?? "129.50",
  };
  await sql.query`
    insert into products (id, sku, name, description, category, price, currency)
    values (${product.id}, ${product.sku}, ${product.name}, ${"Light and grippy"}, ${product.category},
            ${product.price}::numeric, ${"USD"})`;
  if (fields.stock) {
    await sql.query`
      insert into inventory_stock (product_id, sku, on_hand, reserved)
      values (${product.id}, ${product.sku}, ${fields.stock.onHand}, ${fields.stock.reserved})`;
  }
  return product;
}

export interface GraphqlReply {
  readonly status: number;
  readonly contentType: string | null;
  // deno-lint-ignore no-explicit-any
  readonly body: any;
  readonly text: string;
}

/** POSTs a GraphQL request (JSON) to `app` and reads the reply. */
export async function post(
  app: Hono,
  query: string,
  variables?: Record<string, unknown>,
  extra?: { operationName?: string },
): Promise<GraphqlReply> {
  return replyOf(
    await app.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query, variables, ...extra }),
    }),
  );
}

export async function replyOf(response: Response): Promise<GraphqlReply> {
  const text = await response.text();
  let body: unknown = undefined;
  try {
    body = JSON.parse(text);
  } catch {
    // Left undefined: the assertions on body then say what was wrong.
  }
  return { status: response.status, contentType: response.headers.get("content-type"), body, text };
}

/** The app over a counting Sql port. */
export function graphqlApp(sql: Sql, cache: Cache): { app: Hono; statements: () => number; reset: () => void } {
  const counting = countingSql(sql);
  return { app: createGraphqlRoutes({ sql: counting.sql, cache }), ...counting };
}

/** Table and SQL words that must never reach a client. */
export const LEAKS =
  /inventory_stock|inventory_adjustment|inventory_reserv|product_price_history|price_history|schema_migrations|outbox|relation "|column "|syntax error at|SQLSTATE|select |pglite|postgres/i;

/**
 * POSTs `query` to the GraphQL routes on a worker thread and waits at most `deadlineMs` (worker start included):
 * past it the worker is terminated and this rejects, so a query that blocks the event loop fails the test instead
 * of hanging it. `elapsedMs` is the request alone.
 */
export async function postWithDeadline(
  query: string,
  deadlineMs: number,
): Promise<GraphqlReply & { readonly elapsedMs: number }> {
  const worker = new Worker(new URL("./_request_worker_for_test.ts", import.meta.url).href, { type: "module" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`No answer within ${deadlineMs} ms: the request blocked`)), deadlineMs);
      worker.onmessage = (event) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`The request worker failed: ${event.message}`));
      };
      worker.postMessage({ query });
    });
  } finally {
    clearTimeout(timer);
    worker.terminate();
  }
}
