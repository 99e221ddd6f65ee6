/**
 * Admin stock adjustments with an `Idempotency-Key`: a retried adjustment (a forwarded write whose answer was lost
 * to the hop's timeout, or a process that died after its commit) is applied once; a key is optional, so clients
 * that send none keep working as before.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Row, Sql, SqlValue } from "../../../shared/ports/sql.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { ordersMigrations } from "../orders/mod.ts";
import { insertProduct, migrateForInventory, stockRow } from "./_fixtures_for_test.ts";
import { createInventoryRoutes } from "./mod.ts";

const LEASE_MS = 60_000;

interface Bench {
  readonly sql: Sql;
  readonly tokens: TestTokens;
  readonly clock: { now: Date };
  nudges: number;
  /** Set to make the next transactions wait until it resolves (a request in flight). */
  gate: Promise<void> | undefined;
  /** Set to make storing an idempotent response fail (the process died before it stored the answer). */
  failStore: boolean;
}

let shared: Promise<Bench> | undefined;

/** One PGlite for the file: the inventory tables and the orders' idempotency_keys. */
function bench(): Promise<Bench> {
  shared ??= (async () => {
    const sql = await createPgliteSql();
    await migrateForInventory(sql);
    await migrate(sql, ordersMigrations);
    return {
      sql,
      tokens: await createTestTokens(),
      clock: { now: new Date("2026-03-01T10:00:00Z") },
      nudges: 0,
      gate: undefined,
      failStore: false,
    };
  })();
  return shared;
}

/** The routes over a Sql port the test can stall (transactions) or break (storing an answer). */
function appOf(b: Bench): Hono {
  const sql: Sql = {
    ...b.sql,
    query<T extends Row = Row>(strings: TemplateStringsArray, ...values: SqlValue[]): Promise<T[]> {
      if (b.failStore && strings.join("?").includes("set status = 'completed'")) {
        return Promise.reject(new Error("connection lost"));
      }
      return b.sql.query<T>(strings, ...values);
    },
    transaction: async (fn) => {
      if (b.gate) await b.gate;
      return await b.sql.transaction(fn);
    },
  };
  return createInventoryRoutes({
    sql,
    verifier: b.tokens.verifier,
    nudgeOutbox: () => b.nudges++,
    idempotency: { now: () => b.clock.now, inFlightLeaseMs: LEASE_MS },
  });
}

async function adjust(
  app: Hono,
  b: Bench,
  productId: string,
  body: unknown,
  options: { key?: string; user?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${await b.tokens.token(options.user ?? "admin-1", ["ADMIN"])}`,
    "content-type": "application/json",
  };
  if (options.key !== undefined) headers["idempotency-key"] = options.key;
  return await app.request(`/api/v1/inventory/${productId}/adjustments`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
}

async function ledgerCount(sql: Sql, productId: string): Promise<number> {
  const [{ n }] = await sql.query<{ n: number }>`
    select count(*)::int as n from inventory_adjustment where product_id = ${productId}`;
  return n;
}

async function codeOf(response: Response): Promise<string> {
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  return (await response.json()).code;
}

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...opts,
  name: "an adjustment retried with its Idempotency-Key is applied once and the first response is replayed",
  fn: async () => {
    const b = await bench();
    const app = appOf(b);
    const product = await insertProduct(b.sql);
    const key = crypto.randomUUID();
    const nudgesBefore = b.nudges;
    const first = await adjust(app, b, product.id, { delta: 7, reason: "Delivery" }, { key });
    assert.equal(first.status, 200);
    const firstText = await first.text();
    assert.equal(first.headers.get("idempotent-replayed"), null);

    // The same request again, its fields in another order: the same request by meaning.
    const retry = await adjust(app, b, product.id, { reason: "Delivery", delta: 7 }, { key });
    assert.equal(retry.status, 200);
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.equal(retry.headers.get("content-type"), first.headers.get("content-type"));
    assert.equal(await retry.text(), firstText, "the first response, byte for byte");

    assert.equal((await stockRow(b.sql, product.id)).onHand, 7, "the delta was applied once");
    assert.equal(await ledgerCount(b.sql, product.id), 1);
    assert.equal(b.nudges - nudgesBefore, 1);
  },
});

Deno.test({
  ...opts,
  name: "an Idempotency-Key reused for another adjustment is 422 ECOMMERCE.IDEMPOTENCY_KEY_REUSED and changes nothing",
  fn: async () => {
    const b = await bench();
    const app = appOf(b);
    const product = await insertProduct(b.sql);
    const other = await insertProduct(b.sql);
    const key = crypto.randomUUID();
    assert.equal((await adjust(app, b, product.id, { delta: 5, reason: "Count" }, { key })).status, 200);

    const otherDelta = await adjust(app, b, product.id, { delta: 6, reason: "Count" }, { key });
    assert.equal(otherDelta.status, 422);
    assert.equal(await codeOf(otherDelta), "ECOMMERCE.IDEMPOTENCY_KEY_REUSED");
    const otherProduct = await adjust(app, b, other.id, { delta: 5, reason: "Count" }, { key });
    assert.equal(otherProduct.status, 422);
    assert.equal(await codeOf(otherProduct), "ECOMMERCE.IDEMPOTENCY_KEY_REUSED");

    assert.equal((await stockRow(b.sql, product.id)).onHand, 5);
    assert.equal(await ledgerCount(b.sql, product.id), 1);
    assert.equal(await ledgerCount(b.sql, other.id), 0);
  },
});

Deno.test({
  ...opts,
  name: "a retry while the first adjustment still runs is 409 ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT, then replayed",
  fn: async () => {
    const b = await bench();
    const app = appOf(b);
    const product = await insertProduct(b.sql);
    const key = crypto.randomUUID();
    const held = Promise.withResolvers<void>();
    b.gate = held.promise;
    try {
      const first = adjust(app, b, product.id, { delta: 3, reason: "Delivery" }, { key });
      // The first request holds its claim while it waits for the gate; poll until the claim is there.
      let claimed = false;
      for (let i = 0; i < 200 && !claimed; i++) {
        claimed = (await b.sql.query`select 1 from idempotency_keys where key = ${key}`).length > 0;
        if (!claimed) await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(claimed, "the first request claimed its key before it ran");
      const retry = await adjust(app, b, product.id, { delta: 3, reason: "Delivery" }, { key });
      assert.equal(retry.status, 409);
      assert.equal(retry.headers.get("retry-after"), "1");
      assert.equal(await codeOf(retry), "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT");
      b.gate = undefined;
      held.resolve();
      assert.equal((await first).status, 200);
    } finally {
      b.gate = undefined;
      held.resolve();
    }
    const later = await adjust(app, b, product.id, { delta: 3, reason: "Delivery" }, { key });
    assert.equal(later.headers.get("idempotent-replayed"), "true");
    assert.equal((await stockRow(b.sql, product.id)).onHand, 3);
  },
});

Deno.test({
  ...opts,
  name: "keys are per user, and an adjustment without a key is applied every time (the key is optional)",
  fn: async () => {
    const b = await bench();
    const app = appOf(b);
    const product = await insertProduct(b.sql);
    const key = crypto.randomUUID();
    assert.equal((await adjust(app, b, product.id, { delta: 2, reason: "A" }, { key, user: "admin-a" })).status, 200);
    const otherAdmin = await adjust(app, b, product.id, { delta: 2, reason: "A" }, { key, user: "admin-b" });
    assert.equal(otherAdmin.status, 200);
    assert.equal(otherAdmin.headers.get("idempotent-replayed"), null);
    for (let i = 0; i < 2; i++) {
      const keyless = await adjust(app, b, product.id, { delta: 1, reason: "No key" });
      assert.equal(keyless.status, 200);
      assert.equal(keyless.headers.get("idempotent-replayed"), null);
    }
    assert.equal((await stockRow(b.sql, product.id)).onHand, 6);
    assert.equal(await ledgerCount(b.sql, product.id), 4);

    const blank = await adjust(app, b, product.id, { delta: 1, reason: "x" }, { key: " " });
    assert.equal(blank.status, 400);
    assert.equal(await codeOf(blank), "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED");
    assert.equal((await stockRow(b.sql, product.id)).onHand, 6);
  },
});

Deno.test({
  ...opts,
  name: "a retry after the first attempt committed but never stored its answer answers the stock, not a 2nd delta",
  fn: async () => {
    const b = await bench();
    const app = appOf(b);
    const product = await insertProduct(b.sql);
    const key = crypto.randomUUID();
    b.failStore = true;
    try {
      // Committed and answered, but the answer was never stored: the claim stays in flight until its lease ends.
      assert.equal((await adjust(app, b, product.id, { delta: 4, reason: "Delivery" }, { key })).status, 200);
    } finally {
      b.failStore = false;
    }
    const early = await adjust(app, b, product.id, { delta: 4, reason: "Delivery" }, { key });
    assert.equal(early.status, 409);
    assert.equal(await codeOf(early), "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT");

    const started = b.clock.now;
    b.clock.now = new Date(started.getTime() + LEASE_MS + 1);
    try {
      const retry = await adjust(app, b, product.id, { delta: 4, reason: "Delivery" }, { key });
      assert.equal(retry.status, 200);
      assert.equal((await retry.json()).onHand, 4);
      assert.equal((await stockRow(b.sql, product.id)).onHand, 4, "the delta was not applied again");
      assert.equal(await ledgerCount(b.sql, product.id), 1);
      const replay = await adjust(app, b, product.id, { delta: 4, reason: "Delivery" }, { key });
      assert.equal(replay.headers.get("idempotent-replayed"), "true");
    } finally {
      b.clock.now = started;
    }
  },
});

Deno.test({
  ...opts,
  name: "close the inventory idempotency test database",
  fn: async () => (await bench()).sql.close(),
});
