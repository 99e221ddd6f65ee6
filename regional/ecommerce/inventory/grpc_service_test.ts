/**
 * The inventory gRPC service end to end: a real grpc-js server (port 0) with the service binding, called
 * through the inventory client. The oversell test runs on the real PostgreSQL; the rest on PGlite.
 * Clients are closed before servers: a GOAWAY reaching a live Deno client can crash it (denoland/deno#36788).
 */
import assert from "node:assert/strict";
import { rejectsWithProblem } from "../../../shared/testing/assert_problem.ts";
import * as grpc from "@grpc/grpc-js";
import { startGrpcServer } from "../../../shared/adapters/grpc/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { PROBLEM_CODE_METADATA } from "../../../shared/contracts/grpc_problem.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { migrateForInventory, productWithStock, stockRow } from "./_fixtures_for_test.ts";
import { inventoryClientConstructor } from "./_proto.ts";
import { createInventoryClient, createInventoryGrpcService } from "./mod.ts";

function grpcTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });
}

async function serveInventory(sql: Sql, onNudge: () => void = () => {}) {
  const server = await startGrpcServer({
    port: 0,
    services: [createInventoryGrpcService({ sql, nudgeOutbox: onNudge })],
  });
  return { server, address: `127.0.0.1:${server.port}` };
}

/** A bare grpc-js call, to see the status and trailer that go over the wire. */
function rawCall(address: string, method: string, request: object): Promise<grpc.ServiceError> {
  const Inventory = inventoryClientConstructor();
  const client = new Inventory(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    type Unary = (
      request: object,
      options: grpc.CallOptions,
      callback: (error: grpc.ServiceError | null) => void,
    ) => void;
    const fn = (client as unknown as Record<string, Unary>)[method];
    fn.call(client, request, { deadline: Date.now() + 5_000 }, (error: grpc.ServiceError | null) => {
      client.close();
      if (error) resolve(error);
      else reject(new Error(`Expected ${method} to fail`));
    });
  });
}

grpcTest("[postgres+grpc] 100 concurrent reservations of 1 unit against a stock of 10 give exactly 10", async () => {
  const db = await createTestDatabase();
  const sql = createPostgresSql({ url: db.url });
  let nudges = 0;
  const { server, address } = await (async () => {
    await migrateForInventory(sql);
    return await serveInventory(sql, () => nudges++);
  })();
  // A generous deadline: the 100 transactions queue on one locked row and a pool of 10 connections.
  const client = createInventoryClient(address, { deadlineMs: 15_000 });
  try {
    const product = await productWithStock(sql, 10);
    const requests = Array.from({ length: 100 }, () => ({
      reservationId: crypto.randomUUID(),
      items: [{ productId: product.id, qty: 1 }],
      ttlSec: 60,
    }));
    const started = performance.now();
    const outcomes = await Promise.all(requests.map((request) => client.reserve(request)));
    const elapsedMs = Math.round(performance.now() - started);
    const successes = outcomes.filter((o) => o.ok).length;
    assert.equal(successes, 10, `expected exactly 10 successes, got ${successes} (in ${elapsedMs} ms)`);
    for (const outcome of outcomes.filter((o) => !o.ok)) {
      assert.deepEqual(outcome, { ok: false, productId: product.id, requested: 1, available: 0 });
    }
    assert.deepEqual(await stockRow(sql, product.id), { onHand: 10, reserved: 10 });
    assert.equal(nudges, 10);

    // Retried requests (an answer lost on the way back) answer the first outcome and reserve nothing more.
    const again = await Promise.all(requests.map((request) => client.reserve(request)));
    assert.deepEqual(again, outcomes);
    assert.deepEqual(await stockRow(sql, product.id), { onHand: 10, reserved: 10 });
    const [lines] = await sql.query<{ n: number }>`
      select count(*)::int as n from inventory_reservations where product_id = ${product.id}`;
    assert.equal(lines.n, 10);
  } finally {
    client.close();
    await server.close(1_000);
    await sql.close();
    await db.drop();
  }
});

Deno.test({
  name: "[pglite+grpc] the inventory service through its client",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    // One database for every step: PGlite takes seconds to boot.
    const sql = await createPgliteSql();
    await migrateForInventory(sql);
    const { server, address } = await serveInventory(sql);
    const client = createInventoryClient(address);
    try {
      await t.step("reserve, query, confirm, commit and release", async () => {
        const a = await productWithStock(sql, 5);
        const b = await productWithStock(sql, 1);
        const order = crypto.randomUUID();
        assert.deepEqual(
          await client.reserve({
            reservationId: order,
            items: [{ productId: a.id, qty: 2 }, { productId: b.id, qty: 1 }],
            ttlSec: 60,
          }),
          { ok: true },
        );
        assert.deepEqual(
          await client.reserve({
            reservationId: crypto.randomUUID(),
            items: [{ productId: b.id, qty: 1 }],
            ttlSec: 60,
          }),
          { ok: false, productId: b.id, requested: 1, available: 0 },
        );
        assert.deepEqual(await client.queryStock([a.id, crypto.randomUUID(), b.id]), [
          { productId: a.id, sku: a.sku, onHand: 5, reserved: 2, available: 3 },
          { productId: b.id, sku: b.sku, onHand: 1, reserved: 1, available: 0 },
        ]);
        await client.confirm(order);
        await client.confirm(order);
        await client.commit(order);
        await client.commit(order);
        assert.deepEqual(await stockRow(sql, a.id), { onHand: 3, reserved: 0 });
        assert.deepEqual(await stockRow(sql, b.id), { onHand: 0, reserved: 0 });

        const canceled = crypto.randomUUID();
        await client.reserve({ reservationId: canceled, items: [{ productId: a.id, qty: 3 }], ttlSec: 60 });
        await client.release(canceled);
        await client.release(canceled);
        await client.release(crypto.randomUUID());
        assert.deepEqual(await stockRow(sql, a.id), { onHand: 3, reserved: 0 });
        await rejectsWithProblem(client.confirm(canceled), "COMMON.CONFLICT");
        await rejectsWithProblem(client.commit(crypto.randomUUID()), "COMMON.NOT_FOUND");
      });

      await t.step(
        "what no retry can fix answers FAILED_PRECONDITION (not ABORTED), with its problem code",
        async () => {
          const product = await productWithStock(sql, 4);
          const reservationId = crypto.randomUUID();
          const items = [{ productId: product.id, qty: 2 }];
          await client.reserve({ reservationId, items, ttlSec: 60 });
          await client.release(reservationId);
          const cases: [string, object, string][] = [
            ["ConfirmReservation", { reservationId }, "COMMON.CONFLICT"],
            ["CommitReservation", { reservationId }, "COMMON.CONFLICT"],
            // A retried reserve of a released id: it holds nothing, so no "ok".
            ["ReserveStock", { reservationId, items, ttlSeconds: 60 }, "COMMON.CONFLICT"],
            [
              "ReserveStock",
              { reservationId, items: [{ ...items[0], qty: 1 }], ttlSeconds: 60 },
              "ECOMMERCE.IDEMPOTENCY_KEY_REUSED",
            ],
          ];
          for (const [method, request, code] of cases) {
            const wire = await rawCall(address, method, request);
            assert.equal(wire.code, grpc.status.FAILED_PRECONDITION, `${method}: ${wire.details}`);
            assert.deepEqual(wire.metadata.get(PROBLEM_CODE_METADATA), [code]);
          }
          await rejectsWithProblem(client.reserve({ reservationId, items, ttlSec: 60 }), "COMMON.CONFLICT");
          assert.deepEqual(await stockRow(sql, product.id), { onHand: 4, reserved: 0 });
        },
      );

      await t.step("bad requests answer INVALID_ARGUMENT with COMMON.VALIDATION_FAILED", async () => {
        const product = await productWithStock(sql, 3);
        const item = { productId: product.id, qty: 1 };
        const raw = await rawCall(address, "ReserveStock", { reservationId: "order-1", items: [item], ttlSeconds: 60 });
        assert.equal(raw.code, grpc.status.INVALID_ARGUMENT);
        assert.deepEqual(raw.metadata.get(PROBLEM_CODE_METADATA), ["COMMON.VALIDATION_FAILED"]);
        assert.match(raw.details, /reservationId: must be a UUID/);
        const missingTtl = await rawCall(address, "ReserveStock", {
          reservationId: crypto.randomUUID(),
          items: [item],
        });
        assert.equal(missingTtl.code, grpc.status.INVALID_ARGUMENT);
        const tooMany = await rawCall(address, "QueryStock", { productIds: Array(101).fill(product.id) });
        assert.equal(tooMany.code, grpc.status.INVALID_ARGUMENT);

        const bad = [
          { reservationId: crypto.randomUUID(), items: [], ttlSec: 60 },
          { reservationId: crypto.randomUUID(), items: [{ productId: product.id, qty: 10_001 }], ttlSec: 60 },
          { reservationId: crypto.randomUUID(), items: [{ productId: product.id, qty: -1 }], ttlSec: 60 },
          { reservationId: crypto.randomUUID(), items: [item], ttlSec: 3_601 },
          { reservationId: crypto.randomUUID(), items: Array.from({ length: 101 }, () => item), ttlSec: 60 },
        ];
        for (const request of bad) await rejectsWithProblem(client.reserve(request), "COMMON.VALIDATION_FAILED");
        await rejectsWithProblem(client.release("not-a-uuid"), "COMMON.VALIDATION_FAILED");
        await rejectsWithProblem(client.queryStock([]), "COMMON.VALIDATION_FAILED");
        assert.deepEqual(await stockRow(sql, product.id), { onHand: 3, reserved: 0 });
      });

      await t.step(
        "a server slower than the deadline is COMMON.UPSTREAM_TIMEOUT; no server is UNAVAILABLE",
        async () => {
          await deadlineAndUnavailable(sql);
        },
      );
    } finally {
      client.close();
      await server.close(1_000);
      await sql.close();
    }
  },
});

async function deadlineAndUnavailable(sql: Sql): Promise<void> {
  const product = await productWithStock(sql, 3);
  // The same database behind a port that takes 600 ms to start each transaction.
  let slowWork: Promise<unknown> = Promise.resolve();
  const slowSql: Sql = {
    ...sql,
    query: sql.query.bind(sql),
    exec: sql.exec.bind(sql),
    transaction: (fn) => {
      const work = new Promise((resolve) => setTimeout(resolve, 600)).then(() => sql.transaction(fn));
      slowWork = work.catch(() => {});
      return work;
    },
  };
  const { server, address } = await serveInventory(slowSql);
  const client = createInventoryClient(address, { deadlineMs: 150 });
  const nowhere = createInventoryClient("127.0.0.1:1", { deadlineMs: 2_000 });
  try {
    const started = performance.now();
    const timeout = await rejectsWithProblem(
      client.reserve({ reservationId: crypto.randomUUID(), items: [{ productId: product.id, qty: 1 }], ttlSec: 60 }),
      "COMMON.UPSTREAM_TIMEOUT",
    );
    assert.ok(performance.now() - started < 500, "the call gave up at its deadline");
    assert.match(timeout.message, /ReserveStock.+150 ms/);
    const down = await rejectsWithProblem(nowhere.release(crypto.randomUUID()), "COMMON.UPSTREAM_UNAVAILABLE");
    assert.match(down.message, /after 3 attempts/);
  } finally {
    nowhere.close();
    client.close();
    // The handler keeps running after the caller's deadline: let it finish before the database closes.
    await slowWork;
    await server.close(1_000);
  }
}
