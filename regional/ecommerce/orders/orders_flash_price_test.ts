/**
 * Checkout during a flash sale: a product whose `flash_price:{productId}` holds a running sale is charged the
 * sale price (order line, total, `order.created` event), the others their list price; when the cache cannot
 * answer, the sales table does; when neither can, the order is refused with 503 and nothing is written. On PGlite
 * and on PostgreSQL, through the real sale-price reader of the flash-sales context.
 */
import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import type { Cache } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createSalePrices, type FlashPrice, flashPriceKey, flashSalesMigrations } from "../flash_sales/mod.ts";
import { type Bench, call, created, payloadsOf, problem, runOrderScenarios } from "./_orders_fixture.ts";

const HOUR_MS = 3_600_000;

function saleOf(productId: string, price: string, currency: string, endsInMs = HOUR_MS): FlashPrice {
  return {
    saleId: crypto.randomUUID(),
    productId,
    price,
    currency,
    endsAt: new Date(Date.now() + endsInMs).toISOString(),
  };
}

/** A cache whose every read fails, as Redis does when it is down past the command timeout. */
function brokenCache(): Cache {
  const cache = createMemoryCache();
  return { ...cache, get: () => Promise.reject(new Error("Redis command timed out")) };
}

async function orderOf(bench: Bench, items: { productId: string; qty: number }[]) {
  return await created(await call(bench, "/api/v1/orders", { body: { items } }));
}

const scenarios: Record<string, (bench: Bench) => Promise<void>> = {
  "a product in a running sale is charged its sale price; one without a sale its list price": async (bench) => {
    const cache = createMemoryCache();
    const { apple, pear } = bench.products;
    await cache.set(flashPriceKey(apple), JSON.stringify(saleOf(apple, "19.99", "USD")), { ttlMs: HOUR_MS });
    bench.setSalePrices(createSalePrices(cache, bench.sql));
    const order = await orderOf(bench, [{ productId: apple, qty: 2 }, { productId: pear, qty: 4 }]);
    const byProduct = new Map((order.items as { productId: string; price: string }[]).map((i) => [i.productId, i]));
    assert.equal(byProduct.get(apple)?.price, "19.99", "the sale price");
    assert.equal(byProduct.get(pear)?.price, "1.50", "the list price");
    assert.equal(order.totalAmount, "45.98");
    const [createdEvent] = await payloadsOf(bench.sql, order.id);
    assert.equal(createdEvent.totalAmount, "45.98", "the event carries what was charged");
    const stored = await bench.sql.query<{ price: string }>`
      select price::text as price from order_items where order_id = ${order.id}::uuid and product_id = ${apple}::uuid`;
    assert.equal(stored[0].price, "19.99");
  },

  "an ended, corrupt, foreign or other-currency cache entry leaves the list price": async (bench) => {
    const cache = createMemoryCache();
    const { apple, pear, euro } = bench.products;
    // Past its end (a clock-skewed Redis keeps it a moment), not JSON, another product's, another currency.
    await cache.set(flashPriceKey(apple), JSON.stringify(saleOf(apple, "1.00", "USD", -1_000)), { ttlMs: HOUR_MS });
    await cache.set(flashPriceKey(pear), "{not json", { ttlMs: HOUR_MS });
    const lemon = crypto.randomUUID();
    await cache.set(flashPriceKey(lemon), JSON.stringify(saleOf(lemon, "free", "USD")), { ttlMs: HOUR_MS });
    assert.equal((await createSalePrices(cache, bench.sql)([lemon])).size, 0, "a price that is not an amount");
    await cache.set(flashPriceKey(euro), JSON.stringify(saleOf(euro, "2.00", "USD")), { ttlMs: HOUR_MS });
    bench.setSalePrices(createSalePrices(cache, bench.sql));
    const order = await orderOf(bench, [{ productId: apple, qty: 1 }, { productId: pear, qty: 2 }]);
    assert.equal(order.totalAmount, "28.00");
    const euroOrder = await orderOf(bench, [{ productId: euro, qty: 1 }]);
    assert.equal(euroOrder.totalAmount, "3.00", "a USD sale price never applies to a EUR product");
    // An admin lowered the list price below the running sale's: the lower price is charged.
    const dear = createMemoryCache();
    await dear.set(flashPriceKey(pear), JSON.stringify(saleOf(pear, "1.40", "USD")), { ttlMs: HOUR_MS });
    await bench.sql.query`update products set price = 1.20 where id = ${pear}::uuid`;
    bench.setSalePrices(createSalePrices(dear, bench.sql));
    assert.equal((await orderOf(bench, [{ productId: pear, qty: 2 }])).totalAmount, "2.40", "the list price won");
    await bench.sql.query`update products set price = 1.50 where id = ${pear}::uuid`;
    const other = createMemoryCache();
    await other.set(flashPriceKey(pear), JSON.stringify(saleOf(apple, "0.50", "USD")), { ttlMs: HOUR_MS });
    bench.setSalePrices(createSalePrices(other, bench.sql));
    assert.equal((await orderOf(bench, [{ productId: pear, qty: 2 }])).totalAmount, "3.00");
  },

  "with the cache down, the running sales come from the sales table": async (bench) => {
    await migrate(bench.sql, flashSalesMigrations);
    const { apple, pear } = bench.products;
    const now = Date.now();
    await bench.sql.query`
      insert into flash_sales (sale_id, product_id, price, currency, starts_at, ends_at, created_by)
      values (${crypto.randomUUID()}::uuid, ${apple}::uuid, 20.00, 'USD', ${new Date(now - 60_000)},
              ${new Date(now + HOUR_MS)}, 'admin'),
             (${crypto.randomUUID()}::uuid, ${pear}::uuid, 1.00, 'USD', ${new Date(now - HOUR_MS)},
              ${new Date(now - 60_000)}, 'admin')`;
    bench.setSalePrices(createSalePrices(brokenCache(), bench.sql));
    const order = await orderOf(bench, [{ productId: apple, qty: 1 }, { productId: pear, qty: 2 }]);
    assert.equal(order.totalAmount, "23.00", "apple's running sale; pear's sale is over");
    await bench.sql.exec("delete from flash_sales");
  },

  "when no sale price can be read the order is refused with 503 and nothing is written": async (bench) => {
    bench.setSalePrices(() => Promise.reject(new Error("cache and table both down")));
    const response = await call(bench, "/api/v1/orders", {
      body: { items: [{ productId: bench.products.apple, qty: 1 }] },
    });
    assert.equal(response.headers.get("retry-after"), "2");
    await problem(response, 503, "COMMON.UPSTREAM_UNAVAILABLE");
    const orders = await bench.sql.query`select 1 from orders where user_id = 'alice'`;
    assert.equal(orders.length, 0);
    assert.deepEqual(bench.stock.calls, [], "no stock was reserved");
  },
};

runOrderScenarios("orders at flash-sale prices", scenarios);
