/**
 * The `gql:product:{id}` fill race, replayed step by step on the memory cache and on real Redis: a GraphQL read
 * misses, reads the product and its stock, and stalls before its fill; the product or its stock changes and the
 * change is consumed (the aggregate's mark `gql:product:{id}:v` rises, the entry goes); then the stalled fill
 * arrives. It must not put the old product, or the old stock, back for the 30 s TTL.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Cache } from "../../../shared/ports/cache.ts";
import { stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import type { BatchSubscribeOptions, EventLog, SubscribeOptions } from "../../../shared/ports/event_log.ts";
import type { Row, Sql, SqlValue } from "../../../shared/ports/sql.ts";
import { withScratchRedis } from "../../../shared/testing/scratch_redis.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { gqlProductVersionKey, invalidateCachedProduct, productVersionKey } from "../catalog/mod.ts";
import { reserveStock } from "../inventory/mod.ts";
import { startInvalidations } from "../invalidations/mod.ts";
import { insertProduct, migrateForGraphql, post } from "./_fixture_for_test.ts";
import { createGraphqlRoutes, gqlProductCacheKey, startGraphqlCacheInvalidation } from "./mod.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

let shared: Promise<Sql> | undefined;
function database(): Promise<Sql> {
  shared ??= createPgliteSql().then(async (sql) => {
    await migrateForGraphql(sql);
    return sql;
  });
  return shared;
}

/** A gate: `wait()` blocks until `open()`; `reached` resolves once something waits. */
function gate() {
  const reached = Promise.withResolvers<void>();
  const opened = Promise.withResolvers<void>();
  return {
    reached: reached.promise,
    wait: () => {
      reached.resolve();
      return opened.promise;
    },
    open: () => opened.resolve(),
  };
}

/** `sql` whose first statement matching `pattern` stalls after reading its rows until the gate opens. */
function pausingFirst(sql: Sql, pattern: RegExp, at: ReturnType<typeof gate>): Sql {
  let paused = false;
  return {
    ...sql,
    async query<T extends Row = Row>(strings: TemplateStringsArray, ...values: SqlValue[]): Promise<T[]> {
      const rows = await sql.query<T>(strings, ...values);
      if (!paused && pattern.test(strings.join("?"))) {
        paused = true;
        await at.wait();
      }
      return rows;
    },
  };
}

/** The product changes (as a PATCH would: the version goes up) and its product.updated is consumed. */
async function changePrice(sql: Sql, cache: Cache, id: string, price: string): Promise<void> {
  const [{ version }] = await sql.query<{ version: number }>`
    update products set price = ${price}::numeric, version = version + 1, updated_at = now() where id = ${id}
    returning version`;
  // What both consumers of product.updated do (the catalog's and the invalidation stream's).
  await invalidateCachedProduct(cache, id, version);
}

const PRICE = `query($id: ID!) { product(id: $id) { price inventory { available } } }`;

/** A reader stalls between its SQL read and its fill while the product changes. */
async function stalledFillScenario(cache: Cache): Promise<void> {
  const sql = await database();
  const p = await insertProduct(sql, { price: "129.50", stock: { onHand: 5, reserved: 0 } });
  const read = gate();
  const stalled = createGraphqlRoutes({ sql: pausingFirst(sql, /from products/, read), cache });
  const reading = post(stalled, PRICE, { id: p.id });
  await read.reached;

  await changePrice(sql, cache, p.id, "42.00");
  read.open();
  assert.equal((await reading).body.data.product.price, "129.50", "the stalled reader answers what it read");

  const next = await post(createGraphqlRoutes({ sql, cache }), PRICE, { id: p.id });
  assert.equal(next.body.data.product.price, "42.00", "the next reader gets the new price, not the stalled one's");
  const entry = await cache.get(gqlProductCacheKey(p.id));
  assert.equal(JSON.parse(entry!).product.price, "42.00", "the fresh read fills the entry");
}

/** A `products` list in the same query read the product before the change; `product(id)` then misses after it. */
async function primedFillScenario(cache: Cache): Promise<void> {
  const sql = await database();
  const category = uniqueName("race").slice(0, 60);
  const p = await insertProduct(sql, { category, price: "129.50", stock: { onHand: 5, reserved: 0 } });
  const list = gate();
  const lookup = gate();
  const pausedCache: Cache = {
    ...cache,
    get: async (key) => {
      if (key.includes(p.id)) await lookup.wait();
      return await cache.get(key);
    },
  };
  const app: Hono = createGraphqlRoutes({ sql: pausingFirst(sql, /from products/, list), cache: pausedCache });
  const query = `query($id: ID!, $c: String) {
    products(filter: { category: $c }) { nodes { id price } }
    product(id: $id) { price }
  }`;
  const reading = post(app, query, { id: p.id, c: category });
  await Promise.all([list.reached, lookup.reached]);

  await changePrice(sql, cache, p.id, "42.00");
  list.open();
  // One macrotask: the list's rows reach its resolver (which primes the product loader) in microtasks.
  await new Promise((resolve) => setTimeout(resolve, 0));
  lookup.open();
  const stale = await reading;
  assert.equal(stale.body.data.products.nodes[0].price, "129.50");

  const next = await post(createGraphqlRoutes({ sql, cache }), PRICE, { id: p.id });
  assert.equal(next.body.data.product.price, "42.00", "a product read before the miss's guard is never stored");
}

for (
  const [name, scenario] of [
    ["a GraphQL fill that read the product before a consumed product.updated is refused", stalledFillScenario],
    ["a product(id) miss never stores the product a products list in the same query read earlier", primedFillScenario],
  ] as const
) {
  Deno.test({ ...opts, name: `[memory] ${name}`, fn: () => scenario(createMemoryCache()) });
  Deno.test({ ...opts, name: `[redis] ${name}`, fn: () => withScratchRedis(scenario) });
}

/** An event log whose records the test hands over itself, in batches (as Kafka) or one at a time. */
function handDeliveredLog(
  batches: boolean,
): { eventLog: EventLog; deliver(key: string, value: string): Promise<void> } {
  let one: SubscribeOptions["handler"] | undefined;
  let many: BatchSubscribeOptions["handler"] | undefined;
  const joined = { ready: Promise.resolve(), close: () => Promise.resolve() };
  const eventLog: EventLog = {
    ensureTopics: () => Promise.resolve(),
    publish: () => Promise.reject(new Error("This log only delivers what the test hands it")),
    subscribe: (options) => {
      one = options.handler;
      return Promise.resolve(joined);
    },
    ...(batches
      ? {
        subscribeBatches: (options: BatchSubscribeOptions) => {
          many = options.handler;
          return Promise.resolve(joined);
        },
      }
      : {}),
    ping: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  let offset = 0;
  return {
    eventLog,
    async deliver(key, value) {
      const at = offset++;
      const record = {
        topic: stockAdjusted.eventType,
        partition: 0,
        offset: String(at),
        key,
        value,
        headers: {},
        timestampMs: at,
      };
      if (many) await many([record]);
      else if (one) await one(record);
      else throw new Error("Nothing subscribed to the log");
    },
  };
}

/** Starts a consumer of stock.adjusted on `cache`; resolves with its stop. */
type StockConsumer = (eventLog: EventLog, cache: Cache) => Promise<() => Promise<void>>;

/** The region's consumers that invalidate `gql:product:{id}` on stock.adjusted. */
const STOCK_CONSUMERS: readonly (readonly [string, boolean, StockConsumer])[] = [
  ["the GraphQL cache consumer (batches)", true, graphqlCacheConsumer],
  ["the GraphQL cache consumer (one by one)", false, graphqlCacheConsumer],
  ["the invalidation stream", true, async (eventLog, cache) => {
    const invalidations = await startInvalidations({ eventLog, cache, region: "east" });
    await invalidations.ready;
    return () => invalidations.close();
  }],
];

async function graphqlCacheConsumer(eventLog: EventLog, cache: Cache): Promise<() => Promise<void>> {
  const subscription = await startGraphqlCacheInvalidation({ eventLog, cache, groupId: "graphql-cache" });
  return () => subscription.close();
}

/** The newest stock.adjusted envelope inventory appended for `productId`, as the relay would publish it. */
async function newestStockEvent(sql: Sql, productId: string): Promise<string> {
  const [{ envelope }] = await sql.query<{ envelope: string }>`
    select envelope from outbox where topic = ${stockAdjusted.eventType} and partition_key = ${productId}
    order by id desc limit 1`;
  return envelope;
}

const AVAILABLE = `query($id: ID!) { productInventory(id: $id) { available } }`;

/**
 * A reader stalls between its stock read and its fill while an order reserves stock (the function behind the
 * gRPC `ReserveStock`) and the reservation's stock.adjusted is consumed.
 */
async function stalledStockFillScenario(cache: Cache, batches: boolean, consumer: StockConsumer): Promise<void> {
  const sql = await database();
  const p = await insertProduct(sql, { stock: { onHand: 5, reserved: 0 } });
  const log = handDeliveredLog(batches);
  const stop = await consumer(log.eventLog, cache);
  try {
    const read = gate();
    const stalled = createGraphqlRoutes({ sql: pausingFirst(sql, /inventory_stock/, read), cache });
    const reading = post(stalled, AVAILABLE, { id: p.id });
    await read.reached;

    const reservation = { reservationId: crypto.randomUUID(), items: [{ productId: p.id, qty: 2 }], ttlSec: 60 };
    assert.equal((await reserveStock(sql, reservation)).ok, true);
    await log.deliver(p.id, await newestStockEvent(sql, p.id));
    read.open();
    assert.equal((await reading).body.data.productInventory.available, 5, "the stalled reader answers what it read");

    const next = await post(createGraphqlRoutes({ sql, cache }), AVAILABLE, { id: p.id });
    assert.equal(next.body.data.productInventory.available, 3, "the next reader sees the reservation");
    const entry = await cache.get(gqlProductCacheKey(p.id));
    assert.equal(JSON.parse(entry!).inventory.available, 3, "the fresh read fills the entry");
  } finally {
    await stop();
  }
}

for (const [consumerName, batches, consumer] of STOCK_CONSUMERS) {
  const name = `a GraphQL fill that read the stock before a stock.adjusted consumed by ${consumerName} is refused`;
  const scenario = (cache: Cache) => stalledStockFillScenario(cache, batches, consumer);
  Deno.test({ ...opts, name: `[memory] ${name}`, fn: () => scenario(createMemoryCache()) });
  Deno.test({ ...opts, name: `[redis] ${name}`, fn: () => withScratchRedis(scenario) });
}

Deno.test({
  ...opts,
  name: "a fill that read the product after the change is stored, with the mark the change raised",
  fn: async () => {
    const sql = await database();
    const cache = createMemoryCache();
    const p = await insertProduct(sql, { price: "10.00" });
    await changePrice(sql, cache, p.id, "11.00");
    const app = createGraphqlRoutes({ sql, cache });
    assert.equal((await post(app, PRICE, { id: p.id })).body.data.product.price, "11.00");
    assert.equal(JSON.parse((await cache.get(gqlProductCacheKey(p.id)))!).product.price, "11.00");
    assert.equal(await cache.get(productVersionKey(p.id)), "2", "the product's mark stays where the change put it");
    assert.equal(await cache.get(gqlProductVersionKey(p.id)), "1", "the aggregate's mark counts the one change");
  },
});

Deno.test({ ...opts, name: "close the graphql cache test database", fn: async () => (await database()).close() });
