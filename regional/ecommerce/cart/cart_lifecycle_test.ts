/**
 * A cart's end: its owner deletes it (DELETE /api/v1/carts/{id}), and carts that checkout emptied long ago make room
 * for new ones, so a client that makes a cart per checkout is not refused for good after 1,000 orders. On PGlite
 * and on PostgreSQL.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { catalogMigrations } from "../catalog/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { CART_LIMITS, cartMigrations, clearCart, createCartRoutes, getCartItemsForCheckout } from "./mod.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
/** Far past `CART_LIMITS.EMPTY_CART_RECLAIM_AFTER_MS` (24 h): carts left alone this long may be reclaimed. */
const LONG_AGO_HOURS = 30 * 24;

interface Bench {
  readonly sql: Sql;
  readonly tokens: TestTokens;
  readonly carts: Hono;
}

async function call(b: Bench, method: string, path: string, user: string | null): Promise<Response> {
  const headers: Record<string, string> = {};
  if (user !== null) headers.authorization = `Bearer ${await b.tokens.token(user)}`;
  return await b.carts.request(path, { method, headers });
}

async function code(res: Response): Promise<string> {
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  return (await res.json()).code;
}

/** A product straight into the catalog's table (carts check products through the catalog's reads). */
async function insertProduct(sql: Sql): Promise<string> {
  const id = crypto.randomUUID();
  await sql.query`
    insert into products (id, sku, name, category, price, currency)
    values (${id}, ${uniqueName("CART").toUpperCase().slice(0, 40)}, ${"Mug"}, ${"home"}, ${"4.50"}, ${"EUR"})`;
  return id;
}

/** `count` carts of `user`, straight into the table, last changed `idleHours` ago (oldest first). */
async function insertCarts(sql: Sql, user: string, count: number, idleHours: number): Promise<void> {
  await sql.query`
    insert into carts (id, user_id, created_at, updated_at)
    select gen_random_uuid(), ${user}, now() - interval '30 days',
           now() - ${idleHours} * interval '1 hour' - (${count} - g) * interval '1 second'
    from generate_series(1, ${count}) as g`;
}

async function cartsOf(sql: Sql, user: string): Promise<number> {
  const [{ n }] = await sql.query<{ n: number }>`select count(*)::int as n from carts where user_id = ${user}`;
  return n;
}

async function runOn(sql: Sql, body: (b: Bench) => Promise<void>): Promise<void> {
  await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...cartMigrations]);
  const tokens = await createTestTokens();
  await body({ sql, tokens, carts: createCartRoutes({ sql, verifier: tokens.verifier }) });
}

const scenarios: Record<string, (b: Bench) => Promise<void>> = {
  "DELETE /api/v1/carts/{id} deletes the owner's cart and its lines; anyone else's is 404": async (b) => {
    const owner = uniqueName("owner");
    const created = await call(b, "POST", "/api/v1/carts", owner);
    assert.equal(created.status, 201);
    const cart = await created.json();
    const productId = await insertProduct(b.sql);
    const add = await b.carts.request(`/api/v1/carts/${cart.id}/items`, {
      method: "POST",
      headers: { authorization: `Bearer ${await b.tokens.token(owner)}`, "content-type": "application/json" },
      body: JSON.stringify({ productId, qty: 2 }),
    });
    assert.equal(add.status, 200);

    const path = `/api/v1/carts/${cart.id}`;
    const stranger = await call(b, "DELETE", path, uniqueName("stranger"));
    assert.equal(stranger.status, 404);
    assert.equal(await code(stranger), "ECOMMERCE.CART_NOT_FOUND");
    assert.equal((await call(b, "DELETE", path, null)).status, 401);
    assert.equal((await call(b, "GET", path, owner)).status, 200, "a refused delete leaves the cart alone");

    const deleted = await call(b, "DELETE", path, owner);
    assert.equal(deleted.status, 204);
    assert.equal(await deleted.text(), "");
    const gone = await call(b, "GET", path, owner);
    assert.equal(gone.status, 404);
    assert.equal(await code(gone), "ECOMMERCE.CART_NOT_FOUND");
    assert.equal(await getCartItemsForCheckout(b.sql, owner, cart.id), null, "an order can no longer use it");
    const [{ n }] = await b.sql.query<{ n: number }>`
      select count(*)::int as n from cart_items where cart_id = ${cart.id}::uuid`;
    assert.equal(n, 0, "its lines went with it");
    assert.equal((await call(b, "DELETE", path, owner)).status, 404, "deleting twice: the second finds nothing");
    for (const id of ["not-a-uuid", crypto.randomUUID()]) {
      const res = await call(b, "DELETE", `/api/v1/carts/${id}`, owner);
      assert.equal(res.status, 404);
      assert.equal(await code(res), "ECOMMERCE.CART_NOT_FOUND");
    }
  },

  "1,000 carts emptied by checkout long ago do not block a new one; the oldest is reclaimed": async (b) => {
    const user = uniqueName("buyer");
    const max = CART_LIMITS.CARTS_PER_USER_MAX;
    // One cart checked out the way orders do it (clearCart), then left alone past the reclaim age …
    const checkedOut = await (await call(b, "POST", "/api/v1/carts", user)).json();
    const productId = await insertProduct(b.sql);
    await b.sql
      .query`insert into cart_items (cart_id, product_id, qty) values (${checkedOut.id}::uuid, ${productId}::uuid, 1)`;
    await b.sql.transaction((tx) => clearCart(tx, checkedOut.id, [{ productId, qty: 1 }]));
    await b.sql.query`
      update carts set updated_at = now() - ${
      LONG_AGO_HOURS + 1
    } * interval '1 hour' where id = ${checkedOut.id}::uuid`;
    // … and 999 more like it.
    await insertCarts(b.sql, user, max - 1, LONG_AGO_HOURS);
    assert.equal(await cartsOf(b.sql, user), max);

    const created = await call(b, "POST", "/api/v1/carts", user);
    assert.equal(created.status, 201, await created.clone().text());
    assert.equal(await cartsOf(b.sql, user), max, "one idle empty cart made room; the bound still holds");
    assert.equal((await call(b, "GET", `/api/v1/carts/${checkedOut.id}`, user)).status, 404, "the oldest went");
    const fresh = await created.json();
    assert.equal((await call(b, "GET", `/api/v1/carts/${fresh.id}`, user)).status, 200);
  },

  "carts holding items, and carts just made or just checked out, still count: the 1,001st is 409": async (b) => {
    const max = CART_LIMITS.CARTS_PER_USER_MAX;
    const productId = await insertProduct(b.sql);

    const holding = uniqueName("holder");
    await insertCarts(b.sql, holding, max, LONG_AGO_HOURS);
    await b.sql.query`
      insert into cart_items (cart_id, product_id, qty)
      select id, ${productId}::uuid, 1 from carts where user_id = ${holding}`;
    const full = await call(b, "POST", "/api/v1/carts", holding);
    assert.equal(full.status, 409);
    assert.equal(await code(full), "COMMON.CONFLICT");
    assert.equal(await cartsOf(b.sql, holding), max);
    const [{ n }] = await b.sql.query<{ n: number }>`
      select count(*)::int as n from cart_items i join carts c on c.id = i.cart_id where c.user_id = ${holding}`;
    assert.equal(n, max, "no cart with items was taken");

    const recent = uniqueName("recent");
    await insertCarts(b.sql, recent, max, 1);
    const refused = await call(b, "POST", "/api/v1/carts", recent);
    assert.equal(refused.status, 409);
    assert.match((await refused.json()).detail, /DELETE \/api\/v1\/carts\/\{id\}/);
    assert.equal(await cartsOf(b.sql, recent), max, "a refused creation deletes nothing");

    // Deleting one makes room at once.
    const [{ id }] = await b.sql.query<{ id: string }>`
      select id::text as id from carts where user_id = ${recent} limit 1`;
    assert.equal((await call(b, "DELETE", `/api/v1/carts/${id}`, recent)).status, 204);
    assert.equal((await call(b, "POST", "/api/v1/carts", recent)).status, 201);
  },
};

for (const [name, scenario] of Object.entries(scenarios)) {
  Deno.test({
    ...opts,
    name: `[pglite] ${name}`,
    fn: async () => {
      const sql = await createPgliteSql();
      try {
        await runOn(sql, scenario);
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
        await runOn(sql, scenario);
      } finally {
        await sql.close();
        await db.drop();
      }
    },
  });
}

Deno.test({
  ...opts,
  name: "[postgres] an idle empty cart that gets an item while a creation reclaims it is kept, with its item",
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url });
    try {
      await runOn(sql, async (b) => {
        const user = uniqueName("racer");
        const max = CART_LIMITS.CARTS_PER_USER_MAX;
        const productId = await insertProduct(sql);
        await insertCarts(sql, user, max, LONG_AGO_HOURS);
        // All but the oldest hold an item: the oldest is the only cart a creation could reclaim.
        const [{ id: idle }] = await sql.query<{ id: string }>`
          select id::text as id from carts where user_id = ${user} order by updated_at limit 1`;
        await sql.query`
          insert into cart_items (cart_id, product_id, qty)
          select id, ${productId}::uuid, 1 from carts where user_id = ${user} and id <> ${idle}::uuid`;

        // An add to that cart, as changeItem does it (row lock, item, updated_at), still uncommitted …
        const gate = Promise.withResolvers<void>();
        const adding = sql.transaction(async (tx) => {
          await tx.query`select id from carts where id = ${idle}::uuid for update`;
          await tx
            .query`insert into cart_items (cart_id, product_id, qty) values (${idle}::uuid, ${productId}::uuid, 3)`;
          await tx.query`update carts set updated_at = now() where id = ${idle}::uuid`;
          await gate.promise;
        });
        // … while a creation at the limit tries to reclaim it and waits for the row.
        const creating = call(b, "POST", "/api/v1/carts", user);
        for (let i = 0; i < 500; i++) {
          const waiting = await sql.query`
            select 1 from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock' and query like '%delete from carts%'`;
          if (waiting.length > 0) break;
          await new Promise((r) => setTimeout(r, 10));
        }
        gate.resolve();
        await adding;
        const refused = await creating;
        assert.equal(refused.status, 409, "the cart is no longer idle and empty: nothing to reclaim");
        assert.deepEqual(await getCartItemsForCheckout(sql, user, idle), [{ productId, qty: 3 }]);
        assert.equal(await cartsOf(sql, user), max);
      });
    } finally {
      await sql.close();
      await db.drop();
    }
  },
});
