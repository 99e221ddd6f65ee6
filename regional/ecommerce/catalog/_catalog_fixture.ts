/**
 * @module
 * One PGlite catalog per test file (it takes seconds to boot) with the routes over a memory cache, an admin and
 * a customer token, and the request helpers the catalog tests share. Each file closes it in its last test.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { catalogMigrations, createCatalogRoutes, type ProductView } from "./mod.ts";

/** The catalog under test and what the tests reach around the routes for. */
export interface World {
  sql: Sql;
  cache: Cache;
  tokens: TestTokens;
  app: Hono;
  admin: string;
  customer: string;
  nudges: number;
}

let worldPromise: Promise<World> | undefined;

/** One PGlite database for the file (it takes seconds to boot); tests use distinct skus. */
export function world(): Promise<World> {
  worldPromise ??= (async () => {
    const sql = await createPgliteSql();
    await migrate(sql, [...outboxMigrations, ...catalogMigrations]);
    const cache = createMemoryCache();
    const tokens = await createTestTokens();
    const w: World = {
      sql,
      cache,
      tokens,
      admin: await tokens.token("admin-1", ["ADMIN"]),
      customer: await tokens.token("customer-1"),
      nudges: 0,
      app: undefined as unknown as Hono,
    };
    w.app = createCatalogRoutes({ sql, cache, verifier: tokens.verifier, nudgeOutbox: () => void w.nudges++ });
    return w;
  })();
  return worldPromise;
}

/** Closes the file's database, if a test opened it; the last test of each file calls it. */
export async function closeWorld(): Promise<void> {
  if (worldPromise) await (await worldPromise).sql.close();
}

let skuCounter = 0;
/** A sku no other test of the file uses, starting with `prefix`. */
export function sku(prefix = "SKU"): string {
  return `${prefix}-${Date.now().toString(36)}-${(skuCounter++).toString().padStart(4, "0")}`;
}

/** Sends `body` as JSON to the catalog routes, as the admin unless `token` says otherwise (`null`: anonymous). */
export function send(w: World, method: string, path: string, body?: unknown, token: string | null = w.admin) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  return w.app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** Creates a trail shoe (or what `overrides` say) as the admin, asserting 201. */
export async function createProduct(w: World, overrides: Record<string, unknown> = {}): Promise<ProductView> {
  const res = await send(w, "POST", "/api/v1/products", {
    sku: sku(),
    name: "Trail shoe",
    description: "Light and grippy",
    category: "shoes",
    price: "129.50",
    currency: "EUR",
    ...overrides,
  });
  assert.equal(res.status, 201, await res.clone().text());
  return await res.json();
}

/** Asserts a problem+json answer and resolves with its `code`. */
export async function problemCode(res: Response): Promise<string> {
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  return (await res.json()).code;
}

/** PGlite and the memory adapters hold resources across tests on purpose: the database is shared. */
export const opts = { sanitizeResources: false, sanitizeOps: false };
