import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { catalogMigrations, createCatalogRoutes, type ProductView } from "../catalog/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { cartMigrations, type CartView, clearCart, createCartRoutes, getCartItemsForCheckout } from "./mod.ts";

interface World {
  sql: Sql;
  tokens: TestTokens;
  catalog: Hono;
  carts: Hono;
  admin: string;
  alice: string;
  bob: string;
}

let worldPromise: Promise<World> | undefined;

function world(): Promise<World> {
  worldPromise ??= (async () => {
    const sql = await createPgliteSql();
    await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...cartMigrations]);
    const tokens = await createTestTokens();
    return {
      sql,
      tokens,
      catalog: createCatalogRoutes({
        sql,
        cache: createMemoryCache(),
        verifier: tokens.verifier,
        nudgeOutbox: () => {},
      }),
      carts: createCartRoutes({ sql, verifier: tokens.verifier }),
      admin: await tokens.token("admin", ["ADMIN"]),
      alice: await tokens.token("alice"),
      bob: await tokens.token("bob"),
    };
  })();
  return worldPromise;
}

function call(app: Hono, method: string, path: string, token: string | null, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  return app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

let n = 0;
async function product(w: World, price: string, currency = "EUR"): Promise<ProductView> {
  const res = await call(w.catalog, "POST", "/api/v1/products", w.admin, {
    sku: `CART-${Date.now().toString(36)}-${n++}`,
    name: `Item ${n}`,
    category: "cart-test",
    price,
    currency,
  });
  assert.equal(res.status, 201);
  return await res.json();
}

async function newCart(w: World, token: string): Promise<CartView> {
  const res = await call(w.carts, "POST", "/api/v1/carts", token);
  assert.equal(res.status, 201);
  return await res.json();
}

async function code(res: Response): Promise<string> {
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  return (await res.json()).code;
}

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...opts,
  name: "a customer fills a cart and sees current names, prices and the total as decimal strings",
  fn: async () => {
    const w = await world();
    const shoe = await product(w, "129.50");
    const sock = await product(w, "0.10");
    const cart = await newCart(w, w.alice);
    assert.deepEqual(cart.items, []);
    assert.equal(cart.total, "0.00");
    let res = await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, { productId: shoe.id, qty: 2 });
    assert.equal(res.status, 200);
    res = await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, { productId: sock.id, qty: 3 });
    res = await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, { productId: sock.id, qty: 4 });
    const filled: CartView = await res.json();
    assert.deepEqual(filled.items.map((i) => [i.name, i.qty, i.unitPrice, i.lineTotal]), [
      [shoe.name, 2, "129.50", "259.00"],
      [sock.name, 7, "0.10", "0.70"],
    ]);
    assert.equal(filled.total, "259.70");
    assert.equal(filled.currency, "EUR");

    // A price change shows on the next read: carts never store prices.
    await call(w.catalog, "PATCH", `/api/v1/products/${shoe.id}`, w.admin, { price: "100.00" });
    const read: CartView = await (await call(w.carts, "GET", `/api/v1/carts/${cart.id}`, w.alice)).json();
    assert.equal(read.total, "200.70");

    assert.equal(
      (await call(w.carts, "PUT", `/api/v1/carts/${cart.id}/items/${sock.id}`, w.alice, { qty: 1 })).status,
      204,
    );
    assert.equal((await call(w.carts, "DELETE", `/api/v1/carts/${cart.id}/items/${shoe.id}`, w.alice)).status, 204);
    const after: CartView = await (await call(w.carts, "GET", `/api/v1/carts/${cart.id}`, w.alice)).json();
    assert.deepEqual(after.items.map((i) => [i.productId, i.qty]), [[sock.id, 1]]);
    assert.equal(
      (await call(w.carts, "PUT", `/api/v1/carts/${cart.id}/items/${sock.id}`, w.alice, { qty: 0 })).status,
      204,
    );
    const empty: CartView = await (await call(w.carts, "GET", `/api/v1/carts/${cart.id}`, w.alice)).json();
    assert.deepEqual(empty.items, []);
    assert.equal(empty.currency, null);
  },
});

Deno.test({
  ...opts,
  name: "another user's cart answers 404 ECOMMERCE.CART_NOT_FOUND on every route, never 403",
  fn: async () => {
    const w = await world();
    const item = await product(w, "5.00");
    const cart = await newCart(w, w.alice);
    await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, { productId: item.id, qty: 1 });
    const attempts: [string, string, unknown?][] = [
      ["GET", `/api/v1/carts/${cart.id}`],
      ["POST", `/api/v1/carts/${cart.id}/items`, { productId: item.id, qty: 1 }],
      ["PUT", `/api/v1/carts/${cart.id}/items/${item.id}`, { qty: 3 }],
      ["DELETE", `/api/v1/carts/${cart.id}/items/${item.id}`],
      ["GET", `/api/v1/carts/${crypto.randomUUID()}`],
      ["GET", `/api/v1/carts/not-a-uuid`],
    ];
    for (const [method, path, body] of attempts) {
      const res = await call(w.carts, method, path, w.bob, body);
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(await code(res), "ECOMMERCE.CART_NOT_FOUND");
    }
    const mine: CartView = await (await call(w.carts, "GET", `/api/v1/carts/${cart.id}`, w.alice)).json();
    assert.equal(mine.items[0].qty, 1, "the stranger changed nothing");
    assert.equal(await getCartItemsForCheckout(w.sql, "bob", cart.id), null);
    assert.deepEqual(await getCartItemsForCheckout(w.sql, "alice", cart.id), [{ productId: item.id, qty: 1 }]);
    assert.equal(await getCartItemsForCheckout(w.sql, "alice", "nope"), null);
    const anonymous = await call(w.carts, "GET", `/api/v1/carts/${cart.id}`, null);
    assert.equal(anonymous.status, 401);
    assert.equal((await call(w.carts, "POST", "/api/v1/carts", null)).status, 401);
  },
});

Deno.test({
  ...opts,
  name: "a cart holds one currency: adding another answers 422 ECOMMERCE.CURRENCY_MISMATCH",
  fn: async () => {
    const w = await world();
    const euro = await product(w, "10.00", "EUR");
    const dollar = await product(w, "10.00", "USD");
    const cart = await newCart(w, w.alice);
    await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, { productId: euro.id, qty: 1 });
    const res = await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, {
      productId: dollar.id,
      qty: 1,
    });
    assert.equal(res.status, 422);
    assert.equal(await code(res), "ECOMMERCE.CURRENCY_MISMATCH");

    // A product that changes currency later makes the cart unpriceable until one side is removed.
    const other = await product(w, "3.00", "EUR");
    await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, { productId: other.id, qty: 1 });
    await call(w.catalog, "PATCH", `/api/v1/products/${other.id}`, w.admin, { currency: "USD" });
    const mixed = await call(w.carts, "GET", `/api/v1/carts/${cart.id}`, w.alice);
    assert.equal(mixed.status, 422);
    assert.equal(await code(mixed), "ECOMMERCE.CURRENCY_MISMATCH");
    assert.equal((await call(w.carts, "DELETE", `/api/v1/carts/${cart.id}/items/${other.id}`, w.alice)).status, 204);
    const fixed: CartView = await (await call(w.carts, "GET", `/api/v1/carts/${cart.id}`, w.alice)).json();
    assert.equal(fixed.total, "10.00");
  },
});

Deno.test({
  ...opts,
  name: "adding an unknown product answers 404 and quantities stay within 1..1000",
  fn: async () => {
    const w = await world();
    const item = await product(w, "1.00");
    const cart = await newCart(w, w.alice);
    const unknown = await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, {
      productId: crypto.randomUUID(),
      qty: 1,
    });
    assert.equal(unknown.status, 404);
    assert.equal(await code(unknown), "ECOMMERCE.PRODUCT_NOT_FOUND");
    const badPut = await call(w.carts, "PUT", `/api/v1/carts/${cart.id}/items/zzz`, w.alice, { qty: 1 });
    assert.equal(badPut.status, 404);
    for (
      const body of [
        { productId: item.id, qty: 0 },
        { productId: item.id, qty: 1001 },
        { productId: item.id, qty: 1.5 },
        {
          productId: item.id,
          qty: "2",
        },
        { productId: "x", qty: 1 },
        { productId: item.id, qty: 1, price: "0.01" },
      ]
    ) {
      const res = await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(await code(res), "COMMON.VALIDATION_FAILED");
    }
    await call(w.carts, "PUT", `/api/v1/carts/${cart.id}/items/${item.id}`, w.alice, { qty: 999 });
    const over = await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, { productId: item.id, qty: 2 });
    assert.equal(over.status, 409);
    assert.equal(await code(over), "COMMON.CONFLICT");
    const withBody = await call(w.carts, "POST", "/api/v1/carts", w.alice, { owner: "bob" });
    assert.equal(withBody.status, 400);
  },
});

Deno.test({
  ...opts,
  name: "an increase past the total one order may hold answers 409 COMMON.CONFLICT and the cart still reads 200",
  fn: async () => {
    const w = await world();
    const yacht = await product(w, "1000000000.00");
    const cart = await newCart(w, w.alice);
    const path = `/api/v1/carts/${cart.id}`;
    const refused = async (method: string, itemPath: string, body: unknown) => {
      const res = await call(w.carts, method, itemPath, w.alice, body);
      const text = await res.text();
      assert.equal(res.status, 409, `${method} ${JSON.stringify(body)}: ${text}`);
      assert.equal(JSON.parse(text).code, "COMMON.CONFLICT");
      assert.match(JSON.parse(text).detail, /over the 9999999999\.99 one order may total/);
    };
    // 1000 × 1000000000.00 has 13 integer digits: refused before it is stored, on either route.
    await refused("POST", `${path}/items`, { productId: yacht.id, qty: 1000 });
    await refused("PUT", `${path}/items/${yacht.id}`, { qty: 1000 });
    const nine = await call(w.carts, "POST", `${path}/items`, w.alice, { productId: yacht.id, qty: 9 });
    assert.equal(nine.status, 200, await nine.clone().text());
    assert.equal((await nine.json()).total, "9000000000.00");
    await refused("POST", `${path}/items`, { productId: yacht.id, qty: 1 });
    await refused("PUT", `${path}/items/${yacht.id}`, { qty: 10 });
    const read = await call(w.carts, "GET", path, w.alice);
    assert.equal(read.status, 200, await read.clone().text());
    assert.equal((await read.json()).total, "9000000000.00", "the refused changes changed nothing");
  },
});

Deno.test({
  ...opts,
  name: "a cart whose prices rose past 12 integer digits still reads 200 and can be lowered, not raised",
  fn: async () => {
    const w = await world();
    const item = await product(w, "1.00");
    const cart = await newCart(w, w.alice);
    const path = `/api/v1/carts/${cart.id}`;
    await call(w.carts, "POST", `${path}/items`, w.alice, { productId: item.id, qty: 1000 });
    const patch = await call(w.catalog, "PATCH", `/api/v1/products/${item.id}`, w.admin, { price: "9999999999.99" });
    assert.equal(patch.status, 200);
    const read = await call(w.carts, "GET", path, w.alice);
    assert.equal(read.status, 200, await read.clone().text());
    const view: CartView = await read.json();
    assert.equal(view.items[0].lineTotal, "9999999999990.00");
    assert.equal(view.total, "9999999999990.00");
    assert.equal((await call(w.carts, "PUT", `${path}/items/${item.id}`, w.alice, { qty: 999 })).status, 204);
    const raise = await call(w.carts, "POST", `${path}/items`, w.alice, { productId: item.id, qty: 1 });
    assert.equal(raise.status, 409);
    assert.equal(await code(raise), "COMMON.CONFLICT");
    const after: CartView = await (await call(w.carts, "GET", path, w.alice)).json();
    assert.equal(after.total, "9989999999990.01");
  },
});

Deno.test({
  ...opts,
  name: "clearCart takes the checked-out lines off a cart inside the caller's transaction",
  fn: async () => {
    const w = await world();
    const item = await product(w, "2.00");
    const cart = await newCart(w, w.alice);
    await call(w.carts, "POST", `/api/v1/carts/${cart.id}/items`, w.alice, { productId: item.id, qty: 2 });
    await assert.rejects(
      w.sql.transaction(async (tx) => {
        await clearCart(tx, cart.id, [{ productId: item.id, qty: 2 }]);
        throw new Error("checkout failed");
      }),
      /checkout failed/,
    );
    assert.equal((await getCartItemsForCheckout(w.sql, "alice", cart.id))?.length, 1);
    // A line whose quantity differs from the one checked out is not the one ordered: it stays.
    await w.sql.transaction((tx) => clearCart(tx, cart.id, [{ productId: item.id, qty: 1 }]));
    assert.equal((await getCartItemsForCheckout(w.sql, "alice", cart.id))?.length, 1);
    await w.sql.transaction((tx) => clearCart(tx, cart.id, [{ productId: item.id, qty: 2 }]));
    assert.deepEqual(await getCartItemsForCheckout(w.sql, "alice", cart.id), []);
  },
});

Deno.test({
  ...opts,
  name: "close the cart test database",
  fn: async () => {
    if (worldPromise) await (await worldPromise).sql.close();
  },
});
