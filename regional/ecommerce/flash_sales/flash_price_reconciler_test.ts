import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { waitUntil } from "./_sse_client_for_test.ts";
import { type FlashPrice, flashPriceKey } from "./flash_price_projection.ts";
import { reconcileFlashPrices, startFlashPriceReconciler } from "./flash_price_reconciler.ts";
import { flashSalesMigrations } from "./migrations.ts";

/** The injected clock of every step: the reconciler's and the cache's, so TTLs are exact. */
let nowMs = Date.parse("2030-01-01T12:00:00.000Z");
const now = () => nowMs;

/** Writes a sale row as `startFlashSale` would (no product needed: the table has no foreign key). */
async function insertSale(
  sql: Sql,
  sale: { readonly endsAtMs: number; readonly endedAtMs?: number },
): Promise<FlashPrice> {
  const price: FlashPrice = {
    saleId: crypto.randomUUID(),
    productId: crypto.randomUUID(),
    price: "19.90",
    currency: "EUR",
    endsAt: new Date(sale.endsAtMs).toISOString(),
  };
  const endedAt = sale.endedAtMs === undefined ? null : new Date(sale.endedAtMs);
  await sql.query`
    insert into flash_sales (sale_id, product_id, price, currency, starts_at, ends_at, ended_at, created_by)
    values (${price.saleId}::uuid, ${price.productId}::uuid, ${price.price}::numeric, ${price.currency},
            ${new Date(sale.endsAtMs - 3_600_000)}, ${new Date(sale.endsAtMs)}, ${endedAt}, 'admin-1')`;
  return price;
}

async function cached(cache: Cache, productId: string): Promise<unknown> {
  const text = await cache.get(flashPriceKey(productId));
  return text === null ? null : JSON.parse(text);
}

/** A cache whose calls can be intercepted: `beforeSet` runs before each write is applied. */
function interceptedCache(
  cache: Cache,
  hooks: { beforeSet?: (key: string) => Promise<void>; get?: (key: string) => Promise<string | null> },
): Cache {
  return {
    ...cache,
    get: (key) => hooks.get ? hooks.get(key) : cache.get(key),
    set: async (key, value, options) => {
      await hooks.beforeSet?.(key);
      await cache.set(key, value, options);
    },
    del: (...keys) => cache.del(...keys),
    ttlMs: (key) => cache.ttlMs(key),
  };
}

Deno.test({
  name: "[pglite+memory] the flash price reconciler",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    await migrate(sql, flashSalesMigrations);
    // Each step starts from an empty table and cache.
    let cache = createMemoryCache({ now });
    const fresh = async () => {
      await sql.exec("delete from flash_sales");
      await cache.close();
      cache = createMemoryCache({ now });
      nowMs += 86_400_000;
    };
    try {
      await t.step("reconcileFlashPrices() restores a lost price with the time left as its TTL", async () => {
        await fresh();
        const sale = await insertSale(sql, { endsAtMs: nowMs + 60_000 });
        const pass = await reconcileFlashPrices({ sql, cache, now });
        assert.deepEqual(pass, { checked: 1, restored: 1, takenBack: 0 });
        assert.deepEqual(await cached(cache, sale.productId), sale, "the value the projection would have written");
        assert.equal(await cache.ttlMs(flashPriceKey(sale.productId)), 60_000);
        nowMs += 60_000;
        assert.equal(await cached(cache, sale.productId), null, "the restored price ends with the sale");
      });

      await t.step("reconcileFlashPrices() does not restore an ended sale", async () => {
        await fresh();
        // One ended on time by the sweeper, one marked ended with time still on the clock (a sweeper ahead).
        const past = await insertSale(sql, { endsAtMs: nowMs - 1_000, endedAtMs: nowMs - 900 });
        const early = await insertSale(sql, { endsAtMs: nowMs + 60_000, endedAtMs: nowMs - 10 });
        assert.deepEqual(await reconcileFlashPrices({ sql, cache, now }), { checked: 0, restored: 0, takenBack: 0 });
        assert.equal(await cached(cache, past.productId), null);
        assert.equal(await cached(cache, early.productId), null);
      });

      await t.step(
        "reconcileFlashPrices() does not restore a sale whose end passed before the sweeper ran",
        async () => {
          await fresh();
          const over = await insertSale(sql, { endsAtMs: nowMs - 1 });
          const endingNow = await insertSale(sql, { endsAtMs: nowMs });
          assert.deepEqual(await reconcileFlashPrices({ sql, cache, now }), { checked: 0, restored: 0, takenBack: 0 });
          assert.equal(await cached(cache, over.productId), null);
          assert.equal(await cached(cache, endingNow.productId), null);
        },
      );

      await t.step("reconcileFlashPrices() skips a sale whose end passes between the read and the write", async () => {
        await fresh();
        const sale = await insertSale(sql, { endsAtMs: nowMs + 5 });
        // The clock moves past the end after the sale was read as running.
        const slow = interceptedCache(cache, {
          get: async (key) => {
            nowMs += 10;
            return await cache.get(key);
          },
        });
        assert.deepEqual(await reconcileFlashPrices({ sql, cache: slow, now }), {
          checked: 1,
          restored: 0,
          takenBack: 0,
        });
        assert.equal(await cache.ttlMs(flashPriceKey(sale.productId)), -2);
      });

      await t.step("reconcileFlashPrices() takes back a restore the sweeper's end raced", async () => {
        await fresh();
        const sale = await insertSale(sql, { endsAtMs: nowMs + 60_000 });
        // The sweeper (its clock ahead of ours) ends the sale after the pass read it and before it wrote.
        const racing = interceptedCache(cache, {
          beforeSet: async () => {
            await sql.query`update flash_sales set ended_at = ${new Date(nowMs)} where sale_id = ${sale.saleId}::uuid`;
          },
        });
        assert.deepEqual(await reconcileFlashPrices({ sql, cache: racing, now }), {
          checked: 1,
          restored: 1,
          takenBack: 1,
        });
        assert.equal(await cached(cache, sale.productId), null, "an ended sale is not resurrected");
      });

      await t.step("reconcileFlashPrices() leaves a key that holds a price alone", async () => {
        await fresh();
        const sale = await insertSale(sql, { endsAtMs: nowMs + 60_000 });
        const key = flashPriceKey(sale.productId);
        const newer = JSON.stringify({ ...sale, saleId: crypto.randomUUID(), price: "9.90" });
        await cache.set(key, newer, { ttlMs: 1_000 });
        assert.deepEqual(await reconcileFlashPrices({ sql, cache, now }), { checked: 1, restored: 0, takenBack: 0 });
        assert.equal(await cache.get(key), newer);
        assert.equal(await cache.ttlMs(key), 1_000, "not even its TTL changes");
      });

      await t.step("reconcileFlashPrices() works a backlog off in bounded passes", async () => {
        await fresh();
        const sales = [];
        for (let i = 0; i < 5; i++) sales.push(await insertSale(sql, { endsAtMs: nowMs + 60_000 + i }));
        const bounds = { sql, cache, now, salesPerPassMax: 2, pageSize: 2 };
        const first = await reconcileFlashPrices(bounds);
        assert.equal(first.restored, 2);
        assert.ok(first.next, "the pass stopped at its bound");
        const second = await reconcileFlashPrices(bounds, first.next);
        assert.equal(second.restored, 2);
        const third = await reconcileFlashPrices(bounds, second.next);
        assert.deepEqual(third, { checked: 1, restored: 1, takenBack: 0 });
        for (const sale of sales) assert.deepEqual(await cached(cache, sale.productId), sale);
      });

      await t.step("reconcileFlashPrices() gives up on a hung cache after callTimeoutMs", async () => {
        await fresh();
        await insertSale(sql, { endsAtMs: nowMs + 60_000 });
        const hung = interceptedCache(cache, { get: () => new Promise(() => {}) });
        await assert.rejects(
          reconcileFlashPrices({ sql, cache: hung, now, callTimeoutMs: 50 }),
          /timed out after 50 ms/,
        );
      });

      await t.step(
        "startFlashPriceReconciler() restores at start and on its interval, and stops on stop()",
        async () => {
          await fresh();
          const sale = await insertSale(sql, { endsAtMs: nowMs + 60_000 });
          const key = flashPriceKey(sale.productId);
          let gets = 0;
          const counted = interceptedCache(cache, { get: (k) => (gets++, cache.get(k)) });
          const reconciler = startFlashPriceReconciler({ sql, cache: counted, now, intervalMs: 20 });
          try {
            await reconciler.firstPass;
            assert.deepEqual(await cached(cache, sale.productId), sale, "restored by the first pass");
            await cache.del(key);
            await waitUntil("a later pass to restore it", async () => (await cache.get(key)) !== null, 5_000);
          } finally {
            await reconciler.stop();
          }
          await cache.del(key);
          const getsAtStop = gets;
          await new Promise((resolve) => setTimeout(resolve, 100));
          assert.equal(gets, getsAtStop, "no pass after stop()");
          assert.equal(await cache.get(key), null);
        },
      );

      await t.step("startFlashPriceReconciler() settles its first pass when the cache hangs", async () => {
        await fresh();
        await insertSale(sql, { endsAtMs: nowMs + 60_000 });
        const hung = interceptedCache(cache, { get: () => new Promise(() => {}) });
        const reconciler = startFlashPriceReconciler({ sql, cache: hung, now, callTimeoutMs: 50 });
        await reconciler.firstPass;
        await reconciler.stop();
      });

      await t.step("startFlashPriceReconciler() refuses bounds that are not positive integers", () => {
        assert.throws(() => startFlashPriceReconciler({ sql, cache, intervalMs: 0 }), RangeError);
        assert.throws(() => startFlashPriceReconciler({ sql, cache, pageSize: 1.5 }), RangeError);
      });
    } finally {
      await cache.close();
      await sql.close();
    }
  },
});
