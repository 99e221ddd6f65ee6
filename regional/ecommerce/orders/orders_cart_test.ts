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
};

runOrderScenarios("orders from carts", scenarios);
