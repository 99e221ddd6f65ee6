import assert from "node:assert/strict";
import { rejectsWithProblem } from "../../../shared/testing/assert_problem.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import {
  eventually,
  insertProduct,
  migrateForInventory,
  outboxStockEvents,
  productWithStock,
  stockRow,
} from "./_fixtures_for_test.ts";
import {
  commitReservation,
  confirmReservation,
  releaseReservation,
  reserveStock,
  startReservationExpiry,
} from "./mod.ts";

Deno.test({
  name: "[pglite] stock reservations",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    await migrateForInventory(sql);
    // The test's clock: reservations and the sweeper read it, so expiry needs no sleeping.
    let nowMs = Date.parse("2026-01-01T12:00:00Z");
    const now = () => nowMs;
    try {
      await t.step("a reservation holds every item or none", async () => {
        const plenty = await productWithStock(sql, 10);
        const scarce = await productWithStock(sql, 2);
        const short = await reserveStock(sql, {
          reservationId: crypto.randomUUID(),
          items: [{ productId: plenty.id, qty: 4 }, { productId: scarce.id, qty: 3 }],
          ttlSec: 60,
        }, now);
        assert.deepEqual(short, { ok: false, productId: scarce.id, requested: 3, available: 2 });
        assert.deepEqual(await stockRow(sql, plenty.id), { onHand: 10, reserved: 0 });
        const fine = await reserveStock(sql, {
          reservationId: crypto.randomUUID(),
          items: [{ productId: scarce.id, qty: 2 }, { productId: plenty.id, qty: 4 }],
          ttlSec: 60,
        }, now);
        assert.deepEqual(fine, { ok: true });
        assert.deepEqual(await stockRow(sql, plenty.id), { onHand: 10, reserved: 4 });
        assert.deepEqual(await stockRow(sql, scarce.id), { onHand: 2, reserved: 2 });
        const last = (await outboxStockEvents(sql, plenty.id)).at(-1);
        assert.equal(last?.delta, 0);
        assert.equal(last?.reserved, 4);
      });

      await t.step("a product never counted has nothing available", async () => {
        const product = await insertProduct(sql);
        const outcome = await reserveStock(sql, {
          reservationId: crypto.randomUUID(),
          items: [{ productId: product.id, qty: 1 }],
          ttlSec: 60,
        });
        assert.deepEqual(outcome, { ok: false, productId: product.id, requested: 1, available: 0 });
      });

      await t.step("a repeated reserve answers the first outcome without reserving twice", async () => {
        const product = await productWithStock(sql, 5);
        const request = { reservationId: crypto.randomUUID(), items: [{ productId: product.id, qty: 3 }], ttlSec: 60 };
        assert.deepEqual(await reserveStock(sql, request), { ok: true });
        assert.deepEqual(await reserveStock(sql, request), { ok: true });
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 3 });
        // A shortage is remembered too: stock freed later does not change the answer for this id.
        const failing = { reservationId: crypto.randomUUID(), items: [{ productId: product.id, qty: 3 }], ttlSec: 60 };
        const first = await reserveStock(sql, failing);
        assert.deepEqual(first, { ok: false, productId: product.id, requested: 3, available: 2 });
        await releaseReservation(sql, request.reservationId);
        assert.deepEqual(await reserveStock(sql, failing), first);
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 0 });
        // The same id with other items is a client bug, not a retry.
        await rejectsWithProblem(
          reserveStock(sql, { ...request, items: [{ productId: product.id, qty: 1 }] }),
          "ECOMMERCE.IDEMPOTENCY_KEY_REUSED",
        );
      });

      await t.step("releasing gives the units back once; unknown ids are a no-op", async () => {
        const product = await productWithStock(sql, 4);
        const reservationId = crypto.randomUUID();
        await reserveStock(sql, { reservationId, items: [{ productId: product.id, qty: 4 }], ttlSec: 60 });
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 4, reserved: 4 });
        assert.equal(await releaseReservation(sql, reservationId), true);
        assert.equal(await releaseReservation(sql, reservationId), false);
        assert.equal(await releaseReservation(sql, crypto.randomUUID()), false);
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 4, reserved: 0 });
        await rejectsWithProblem(confirmReservation(sql, reservationId), "COMMON.CONFLICT");
        // A retry of the reserve (its answer was lost) must not say "ok" for a hold that is gone.
        const retried = reserveStock(sql, { reservationId, items: [{ productId: product.id, qty: 4 }], ttlSec: 60 });
        const lapsed = await rejectsWithProblem(retried, "COMMON.CONFLICT");
        assert.match(lapsed.message, /is released and holds no stock/);
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 4, reserved: 0 });
      });

      await t.step("a release before the reserve makes the id hold nothing, then or later", async () => {
        const product = await productWithStock(sql, 3);
        const reservationId = crypto.randomUUID();
        assert.equal(await releaseReservation(sql, reservationId), false);
        const late = reserveStock(sql, { reservationId, items: [{ productId: product.id, qty: 1 }], ttlSec: 60 });
        await rejectsWithProblem(late, "COMMON.CONFLICT");
        assert.equal(await releaseReservation(sql, reservationId), false);
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 3, reserved: 0 });
      });

      await t.step("expiry releases ACTIVE reservations past their time, and confirmed ones stay", async () => {
        const product = await productWithStock(sql, 6);
        const unpaid = crypto.randomUUID();
        const paid = crypto.randomUUID();
        const fresh = crypto.randomUUID();
        await reserveStock(sql, { reservationId: unpaid, items: [{ productId: product.id, qty: 2 }], ttlSec: 30 }, now);
        await reserveStock(sql, { reservationId: paid, items: [{ productId: product.id, qty: 1 }], ttlSec: 30 }, now);
        assert.equal(await confirmReservation(sql, paid), true);
        assert.equal(await confirmReservation(sql, paid), false);
        nowMs += 20_000;
        await reserveStock(sql, { reservationId: fresh, items: [{ productId: product.id, qty: 3 }], ttlSec: 30 }, now);
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 6, reserved: 6 });
        let nudges = 0;
        const expiry = startReservationExpiry({ sql, now, intervalMs: 60_000, nudgeOutbox: () => nudges++ });
        try {
          nowMs += 15_000; // 35 s after the first two, 15 s after the fresh one.
          // The loop's own first sweep may be the one that expires it; sweep() waits for that one.
          await expiry.sweep();
          assert.equal(nudges, 1);
          assert.deepEqual(await stockRow(sql, product.id), { onHand: 6, reserved: 4 });
          const statuses = await sql.query`
            select reservation_id::text as id, status from inventory_reservations where product_id = ${product.id}`;
          const statusOf = new Map(statuses.map((r) => [r.id, r.status]));
          assert.equal(statusOf.get(unpaid), "EXPIRED");
          assert.equal(statusOf.get(paid), "CONFIRMED");
          assert.equal(statusOf.get(fresh), "ACTIVE");
          assert.equal(await expiry.sweep(), 0);
          await rejectsWithProblem(confirmReservation(sql, unpaid), "COMMON.CONFLICT");
          const retried = { reservationId: unpaid, items: [{ productId: product.id, qty: 2 }], ttlSec: 30 };
          await rejectsWithProblem(reserveStock(sql, retried, now), "COMMON.CONFLICT");
          assert.equal(await releaseReservation(sql, unpaid), false);
        } finally {
          await expiry.stop();
        }
      });

      await t.step("a paused sweeper (a replica region) expires nothing until it resumes", async () => {
        const product = await productWithStock(sql, 5);
        await reserveStock(sql, {
          reservationId: crypto.randomUUID(),
          items: [{ productId: product.id, qty: 2 }],
          ttlSec: 1,
        }, now);
        nowMs += 2_000;
        let replica = true;
        const expiry = startReservationExpiry({
          sql,
          now,
          intervalMs: 60_000,
          nudgeOutbox: () => {},
          paused: () => Promise.resolve(replica),
        });
        try {
          assert.equal(await expiry.sweep(), 0);
          assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 2 });
          replica = false;
          assert.equal(await expiry.sweep(), 1);
          assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 0 });
        } finally {
          await expiry.stop();
        }
      });

      await t.step("the sweeper expires a backlog in bounded batches", async () => {
        const product = await productWithStock(sql, 30);
        for (let i = 0; i < 25; i++) {
          await reserveStock(sql, {
            reservationId: crypto.randomUUID(),
            items: [{ productId: product.id, qty: 1 }],
            ttlSec: 1,
          }, now);
        }
        nowMs += 2_000;
        const expiry = startReservationExpiry({
          sql,
          now,
          intervalMs: 60_000,
          batchSize: 10,
          batchesPerSweepMax: 2,
          nudgeOutbox: () => {},
        });
        try {
          // The loop's first sweep starts at once and stops at its bound (2 batches of 10); this sweep
          // waits for it, then expires the remaining 5.
          assert.equal(await expiry.sweep(), 5);
          assert.equal(await expiry.sweep(), 0);
          assert.deepEqual(await stockRow(sql, product.id), { onHand: 30, reserved: 0 });
        } finally {
          await expiry.stop();
        }
      });

      await t.step("committing takes the units off on hand and records the change", async () => {
        const product = await productWithStock(sql, 8);
        const reservationId = crypto.randomUUID();
        await reserveStock(sql, { reservationId, items: [{ productId: product.id, qty: 3 }], ttlSec: 60 });
        await confirmReservation(sql, reservationId);
        assert.equal(await commitReservation(sql, reservationId), true);
        assert.equal(await commitReservation(sql, reservationId), false);
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 0 });
        const last = (await outboxStockEvents(sql, product.id)).at(-1);
        assert.deepEqual(last, {
          productId: product.id,
          sku: product.sku,
          delta: -3,
          reason: `Fulfilled "${reservationId}"`,
          onHand: 5,
          reserved: 0,
        });
        const ledger = await sql.query`
          select delta, source from inventory_adjustment where product_id = ${product.id} order by id`;
        assert.deepEqual(ledger.at(-1), { delta: -3, source: "reservation" });
        // Committed units are gone: releasing now changes nothing.
        assert.equal(await releaseReservation(sql, reservationId), false);
        await rejectsWithProblem(commitReservation(sql, crypto.randomUUID()), "COMMON.NOT_FOUND");
      });

      await t.step("bad reservation requests are validation problems", async () => {
        const product = await productWithStock(sql, 1);
        const good = { reservationId: crypto.randomUUID(), items: [{ productId: product.id, qty: 1 }], ttlSec: 60 };
        const bad = [
          { ...good, reservationId: "order-1" },
          { ...good, items: [] },
          { ...good, items: [{ productId: product.id, qty: 0 }] },
          { ...good, items: [{ productId: product.id, qty: 10_001 }] },
          { ...good, items: [{ productId: "nope", qty: 1 }] },
          { ...good, items: [{ productId: product.id, qty: 1 }, { productId: product.id, qty: 1 }] },
          { ...good, items: Array.from({ length: 101 }, () => ({ productId: crypto.randomUUID(), qty: 1 })) },
          { ...good, ttlSec: 0 },
          { ...good, ttlSec: 3_601 },
        ];
        for (const request of bad) await rejectsWithProblem(reserveStock(sql, request), "COMMON.VALIDATION_FAILED");
        await rejectsWithProblem(releaseReservation(sql, "x"), "COMMON.VALIDATION_FAILED");
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 1, reserved: 0 });
      });
    } finally {
      await sql.close();
    }
  },
});

Deno.test({
  name: "[postgres] overlapping multi-item reservations and releases run concurrently without deadlock or drift",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url, maxConnections: 10 });
    try {
      await migrateForInventory(sql);
      const products: { id: string; sku: string }[] = [];
      for (let i = 0; i < 5; i++) products.push(await productWithStock(sql, 40));
      // A seeded generator, so a failure replays: items in random order, overlapping products.
      let seed = 20_261_122;
      const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
      const requests = Array.from({ length: 60 }, () => {
        const shuffled = [...products];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
        }
        const picked = shuffled.slice(0, 2 + Math.floor(random() * 3));
        return {
          reservationId: crypto.randomUUID(),
          items: picked.map((p) => ({ productId: p.id, qty: 1 + Math.floor(random() * 3) })),
          ttlSec: 60,
        };
      });
      const outcomes = await Promise.all(requests.map(async (request, i) => {
        const outcome = await reserveStock(sql, request);
        // Every third reservation is canceled at once, racing the reservations still running.
        if (i % 3 === 0) await releaseReservation(sql, request.reservationId);
        return outcome;
      }));
      assert.ok(outcomes.some((o) => o.ok), "some reservations succeed");
      const drift = await sql.query`
        select s.product_id, s.reserved,
               coalesce((select sum(r.qty) from inventory_reservations r
                         where r.product_id = s.product_id and r.status = 'ACTIVE'), 0)::int as held
        from inventory_stock s where s.reserved <> coalesce((select sum(r.qty) from inventory_reservations r
                         where r.product_id = s.product_id and r.status = 'ACTIVE'), 0)`;
      assert.deepEqual(drift, [], "reserved equals the units held by active reservations");
    } finally {
      await sql.close();
      await db.drop();
    }
  },
});

/** Polls until `count` sessions of this database wait for a lock. */
function lockWaiters(sql: Sql, count: number): Promise<true> {
  return eventually(`${count} lock waiters`, async () => {
    const [row] = await sql.query<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`;
    return row.n >= count ? true : undefined;
  }, 5_000);
}

Deno.test({
  name: "[postgres] a release that arrives while its reserve is still running releases what that reserve commits",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url, maxConnections: 5 });
    let unblock = () => {};
    try {
      await migrateForInventory(sql);
      const product = await productWithStock(sql, 5);
      // Contention, as a busy product has: another transaction holds the stock row, so the reserve has
      // claimed its id but waits, uncommitted, for the row (its client's deadline would pass meanwhile).
      const gate = new Promise<void>((resolve) => unblock = resolve);
      let holding = () => {};
      const held = new Promise<void>((resolve) => holding = resolve);
      const blocker = sql.transaction(async (tx) => {
        await tx.query`select 1 from inventory_stock where product_id = ${product.id} for update`;
        holding();
        await gate;
      });
      await held;
      const request = { reservationId: crypto.randomUUID(), items: [{ productId: product.id, qty: 2 }], ttlSec: 900 };
      const reserving = reserveStock(sql, request);
      await lockWaiters(sql, 1);
      // The order gave up on the reserve and cancels: its release runs before the reserve commits.
      let releaseDone = false;
      const releasing = releaseReservation(sql, request.reservationId).finally(() => releaseDone = true);
      const bothWaiting = lockWaiters(sql, 2);
      bothWaiting.catch(() => {}); // Settled by the race below, or left behind by it.
      await Promise.race([releasing, bothWaiting]);
      assert.equal(releaseDone, false, "the release waits for the reserve of the same id");
      unblock();
      await blocker;
      assert.deepEqual(await reserving, { ok: true });
      assert.equal(await releasing, true, "the release gave back what the reserve then committed");
      assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 0 });
      const lines = await sql.query`
        select status from inventory_reservations where reservation_id = ${request.reservationId}`;
      assert.deepEqual(lines, [{ status: "RELEASED" }]);
      // The order service's retry of the reserve answers that nothing is held, not "ok".
      await rejectsWithProblem(reserveStock(sql, request), "COMMON.CONFLICT");
      assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 0 });
    } finally {
      unblock();
      await sql.close();
      await db.drop();
    }
  },
});
