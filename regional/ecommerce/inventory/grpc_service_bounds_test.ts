/**
 * The inventory gRPC server's bounds: bytes that are no ReserveRequest, a message past the size the largest
 * valid request needs, and a ReserveStock that outlives its caller's deadline. A real grpc-js server (port 0)
 * with the service binding; PGlite for the wire checks, the real PostgreSQL for the lock wait.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { startGrpcServer } from "../../../shared/adapters/grpc/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { PROBLEM_CODE_METADATA } from "../../../shared/contracts/grpc_problem.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { rejectsWithProblem } from "../../../shared/testing/assert_problem.ts";
import { eventually, migrateForInventory, productWithStock, stockRow } from "./_fixtures_for_test.ts";
import { inventoryClientConstructor } from "./_proto.ts";
import { INVENTORY_REQUEST_BYTES_MAX } from "./grpc_service.ts";
import {
  createInventoryClient,
  createInventoryGrpcService,
  RESERVATION_ITEMS_MAX,
  RESERVATION_QTY_MAX,
} from "./mod.ts";

const RESERVE_PATH = "/bitvelocity.ecommerce.inventory.v1.Inventory/ReserveStock";

async function serveInventory(sql: Sql) {
  const server = await startGrpcServer({
    port: 0,
    services: [createInventoryGrpcService({ sql, nudgeOutbox: () => {} })],
  });
  return { server, address: `127.0.0.1:${server.port}` };
}

/** Sends `bytes` as a ReserveStock body, unencoded, and resolves with the failure. */
function sendBytes(address: string, bytes: Uint8Array): Promise<grpc.ServiceError> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      RESERVE_PATH,
      (body: Uint8Array) => Buffer.from(body),
      (response: Buffer) => response,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (error) => {
        client.close();
        if (error) resolve(error);
        else reject(new Error("Expected ReserveStock to fail"));
      },
    );
  });
}

Deno.test({
  name: "[pglite+grpc] undecodable and oversized ReserveStock requests",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    await migrateForInventory(sql);
    const { server, address } = await serveInventory(sql);
    try {
      await t.step("bytes that are no ReserveRequest are INVALID_ARGUMENT with COMMON.VALIDATION_FAILED", async () => {
        // A lone tag byte; an item of 16 bytes of which 1 arrived. grpc-js alone answers INTERNAL without a
        // problem code, which the kit's client takes for a broken connection (it replaces its channel).
        for (const bytes of [[0x0f], [0x12, 0x10, 0x0a]]) {
          const wire = await sendBytes(address, new Uint8Array(bytes));
          assert.equal(wire.code, grpc.status.INVALID_ARGUMENT, wire.details);
          assert.deepEqual(wire.metadata.get(PROBLEM_CODE_METADATA), ["COMMON.VALIDATION_FAILED"]);
        }
      });

      await t.step("a message past the largest valid request is RESOURCE_EXHAUSTED before it is decoded", async () => {
        // 40 000 empty items (`12 00`): 80 KB that would decode to 40 000 objects before validation refused them.
        const emptyItems = new Uint8Array(80_000).map((_, i) => i % 2 === 0 ? 0x12 : 0x00);
        const wire = await sendBytes(address, emptyItems);
        assert.equal(wire.code, grpc.status.RESOURCE_EXHAUSTED, wire.details);
      });

      await t.step("the largest valid request fits the bound with room to spare, and is answered", async () => {
        const largest = {
          reservationId: crypto.randomUUID(),
          items: Array.from({ length: RESERVATION_ITEMS_MAX }, () => ({
            productId: crypto.randomUUID(),
            qty: RESERVATION_QTY_MAX,
          })),
          ttlSec: 3_600,
        };
        const encoded = inventoryClientConstructor().service.ReserveStock.requestSerialize({
          ...largest,
          ttlSeconds: largest.ttlSec,
        });
        assert.ok(encoded.length * 8 < INVENTORY_REQUEST_BYTES_MAX, `largest valid request: ${encoded.length} bytes`);
        const client = createInventoryClient(address);
        try {
          // Products never counted: a shortage answer, which proves the request was decoded and served.
          const outcome = await client.reserve(largest);
          assert.equal(outcome.ok, false);
        } finally {
          client.close();
        }
      });
    } finally {
      await server.close(1_000);
      await sql.close();
    }
  },
});

Deno.test({
  name: "[postgres+grpc] a ReserveStock still waiting on a lock at its caller's deadline gives up and holds nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url, maxConnections: 5 });
    await migrateForInventory(sql);
    const { server, address } = await serveInventory(sql);
    const client = createInventoryClient(address, { deadlineMs: 300 });
    let unblock = () => {};
    try {
      const product = await productWithStock(sql, 5);
      const gate = new Promise<void>((resolve) => unblock = resolve);
      let holding = () => {};
      const held = new Promise<void>((resolve) => holding = resolve);
      const blocker = sql.transaction(async (tx) => {
        await tx.query`select 1 from inventory_stock where product_id = ${product.id} for update`;
        holding();
        await gate;
      });
      await held;
      const request = { reservationId: crypto.randomUUID(), items: [{ productId: product.id, qty: 1 }], ttlSec: 900 };
      await rejectsWithProblem(client.reserve(request), "COMMON.UPSTREAM_TIMEOUT");
      // The server's transaction stops waiting at the same deadline (lock_timeout), instead of committing a
      // hold whenever the row comes free — after the order has been canceled and released.
      await eventually("the reserve stops waiting for the lock", async () => {
        const [row] = await sql.query<{ n: number }>`
          select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`;
        return row.n === 0 ? true : undefined;
      }, 3_000);
      unblock();
      await blocker;
      assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 0 });
      const claims = await sql.query`
        select 1 from inventory_reservation_requests where reservation_id = ${request.reservationId}`;
      assert.equal(claims.length, 0, "nothing of the call was committed");
      // So a retry with the same id (what the timeout's detail says to do) reserves normally.
      const patient = createInventoryClient(address, { deadlineMs: 5_000 });
      try {
        assert.deepEqual(await patient.reserve(request), { ok: true });
      } finally {
        patient.close();
      }
      assert.deepEqual(await stockRow(sql, product.id), { onHand: 5, reserved: 1 });
    } finally {
      unblock();
      client.close();
      await server.close(1_000);
      await sql.close();
      await db.drop();
    }
  },
});
