/**
 * Orders placed from a cart: the cart's lines are priced and taken off, only those ordered, and another user's
 * cart is a 404: on PGlite and on PostgreSQL.
 */
import assert from "node:assert/strict";
import { type Bench, call, created, problem, runOrderScenarios } from "./_orders_fixture.ts";

const scenarios: Record<string, (bench: Bench) => Promise<void>> = {
  "an order from a cart empties the cart; another user's cart answers 404": async (bench) => {
    const cart = await (await call(bench, "/api/v1/carts", { method: "POST", key: null }, bench.carts)).json();
    const add = await call(bench, `/api/v1/carts/${cart.id}/items`, {
      key: null,
      body: { productId: bench.products.pear, qty: 4 },
    }, bench.carts);
    assert.equal(add.status, 200, await add.clone().text());
    await problem(
      await call(bench, "/api/v1/orders", { user: "bob", body: { cartId: cart.id } }),
      404,
      "ECOMMERCE.CART_NOT_FOUND",
    );
    const order = await created(await call(bench, "/api/v1/orders", { body: { cartId: cart.id } }));
    assert.deepEqual(order.items, [{ productId: bench.products.pear, qty: 4, price: "1.50" }]);
    assert.equal(order.totalAmount, "6.00");
    const after = await (await call(bench, `/api/v1/carts/${cart.id}`, {}, bench.carts)).json();
    assert.deepEqual(after.items, []);
    await problem(await call(bench, "/api/v1/orders", { body: { cartId: cart.id } }), 400, "COMMON.VALIDATION_FAILED");
  },

  "a cart checkout takes off only the lines it ordered; a line added or changed meanwhile stays": async (bench) => {
    const cart = await (await call(bench, "/api/v1/carts", { method: "POST", key: null }, bench.carts)).json();
    const put = async (productId: string, qty: number) => {
      const response = await call(
        bench,
        `/api/v1/carts/${cart.id}/items`,
        { key: null, body: { productId, qty } },
        bench.carts,
      );
      assert.equal(response.status, 200, await response.clone().text());
    };
    await put(bench.products.pear, 4);
    await put(bench.products.apple, 1);
    const held = bench.stock.holdNextReserve();
    const placing = call(bench, "/api/v1/orders", { body: { cartId: cart.id } });
    await held.entered;
    // While the stock is being reserved, the customer adds two more apples in another tab (1 + 2).
    await put(bench.products.apple, 2);
    held.release();
    const order = await created(await placing);
    const items = order.items as { qty: number }[];
    assert.deepEqual(items.map((i) => i.qty).sort(), [1, 4], "ordered as read");
    const after = await (await call(bench, `/api/v1/carts/${cart.id}`, {}, bench.carts)).json();
    assert.deepEqual(
      after.items.map((i: { productId: string; qty: number }) => [i.productId, i.qty]),
      [[bench.products.apple, 3]],
      "the changed line was not ordered, so it stays",
    );
  },

  "an order whose total passes 9999999999.99 answers 400, from items and from a cart whose price rose": async (
    bench,
  ) => {
    const dear = crypto.randomUUID();
    await bench.sql.query`
      insert into products (id, sku, name, description, category, price, currency)
      values (${dear}::uuid, ${`dear-${dear}`}, 'dear', '', 'fruit', 1.00, 'USD')`;
    const cart = await (await call(bench, "/api/v1/carts", { method: "POST", key: null }, bench.carts)).json();
    const add = await call(bench, `/api/v1/carts/${cart.id}/items`, {
      key: null,
      body: { productId: dear, qty: 1000 },
    }, bench.carts);
    assert.equal(add.status, 200, await add.clone().text());
    await bench.sql.query`update products set price = 9999999999.99 where id = ${dear}::uuid`;
    // 1000 × 9999999999.99 has 13 integer digits, more than parseMoney() accepts: still the total check.
    for (const body of [{ items: [{ productId: dear, qty: 1000 }] }, { cartId: cart.id }]) {
      const refused = await problem(await call(bench, "/api/v1/orders", { body }), 400, "COMMON.VALIDATION_FAILED");
      assert.match(String(refused.detail), /"9999999999990\.00" exceeds the limit of 9999999999\.99/);
    }
    const read = await call(bench, `/api/v1/carts/${cart.id}`, {}, bench.carts);
    assert.equal(read.status, 200, await read.clone().text());
    assert.equal((await read.json()).total, "9999999999990.00");
    const [{ n }] = await bench.sql.query<{ n: number }>`select count(*)::int as n from orders`;
    assert.equal(n, 0, "no order was placed");
  },
};

runOrderScenarios("orders from carts", scenarios);
