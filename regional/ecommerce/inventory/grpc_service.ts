/**
 * @module
 * The gRPC `Inventory` service (proto/ecommerce/inventory/v1/inventory.proto) over the reservation domain.
 * The wiring adds the binding to the region's inventory gRPC server next to grpc.health.v1. Errors are
 * `ProblemError`s; the gRPC kit maps them to statuses (bad input → INVALID_ARGUMENT, a reservation that holds
 * nothing any more → FAILED_PRECONDITION). ReserveStock is bounded by its call: a caller gone before the
 * commit (deadline passed, cancelled) rolls it back.
 */
import client from "prom-client";
import { z } from "zod";
import type { GrpcServiceBinding } from "../../../shared/adapters/grpc/mod.ts";
import { GrpcStatus } from "../../../shared/contracts/problem.ts";
import { metrics } from "../../../shared/observability/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import {
  inventoryClientConstructor,
  type ReserveRequestMessage,
  type ReserveResponseMessage,
  type StockItemMessage,
} from "./_proto.ts";
import {
  commitReservation,
  confirmReservation,
  releaseReservation,
  RESERVATION_ITEMS_MAX,
  reserveStock,
  validated,
} from "./reservations.ts";
import { getStockByProductIds, productIdSchema } from "./stock.ts";

export interface InventoryGrpcDeps {
  readonly sql: Sql;
  /** Wakes the outbox relay after a call changed stock. */
  readonly nudgeOutbox: () => void;
  /** The clock for reservation expiry times, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
}

// Seed 003 section 10 names this metric; module scope, so it is registered once per process.
const reservationFailures = new client.Counter({
  name: "bv_inventory_reservation_failures_total",
  help: "ReserveStock calls answered with a shortage (ok = false)",
  registers: [metrics.registry],
});

const stockQuerySchema = z.array(productIdSchema).min(1).max(RESERVATION_ITEMS_MAX);

/**
 * The largest request the server decodes. The largest valid one is a ReserveRequest of 100 items, each a
 * 36-character UUID and a qty of at most 10000: 4341 bytes (`grpc_service_bounds_test.ts` encodes it). 64 KiB
 * leaves room for fields added later, while a hostile message of empty items (`12 00` repeated) decodes to
 * at most ~32 000 objects instead of the ~2 million that grpc-js's 4 MiB default lets through.
 */
export const INVENTORY_REQUEST_BYTES_MAX = 64 * 1024;

/** The binding to add to a gRPC server: `startGrpcServer({ services: [health, inventory] })`. */
export function createInventoryGrpcService(deps: InventoryGrpcDeps): GrpcServiceBinding {
  const { sql, nudgeOutbox } = deps;
  return {
    definition: inventoryClientConstructor().service,
    requestBytesMax: INVENTORY_REQUEST_BYTES_MAX,
    // Every COMMON.CONFLICT here is a reservation that holds nothing any more (released, expired): no retry
    // of the same call can succeed, which gRPC calls FAILED_PRECONDITION (409's default, ABORTED, says retry).
    statusOverrides: { "COMMON.CONFLICT": GrpcStatus.FAILED_PRECONDITION },
    implementation: {
      async ReserveStock(request: ReserveRequestMessage, _call, bound): Promise<ReserveResponseMessage> {
        const items = request.items.map((item) => ({ productId: item.productId, qty: item.qty }));
        const input = { reservationId: request.reservationId, items, ttlSec: request.ttlSeconds };
        const outcome = await reserveStock(sql, input, deps.now, bound);
        if (!outcome.ok) {
          reservationFailures.inc();
          return {
            ok: false,
            failedProductId: outcome.productId,
            requested: outcome.requested,
            available: outcome.available,
          };
        }
        nudgeOutbox();
        return { ok: true, failedProductId: "", requested: 0, available: 0 };
      },
      async ReleaseStock(request: { reservationId: string }) {
        const released = await releaseReservation(sql, request.reservationId);
        if (released) nudgeOutbox();
        return { released };
      },
      async ConfirmReservation(request: { reservationId: string }) {
        return { confirmed: await confirmReservation(sql, request.reservationId) };
      },
      async CommitReservation(request: { reservationId: string }) {
        const committed = await commitReservation(sql, request.reservationId);
        if (committed) nudgeOutbox();
        return { committed };
      },
      async QueryStock(request: { productIds: readonly string[] }): Promise<{ items: StockItemMessage[] }> {
        const ids = validated(stockQuerySchema, request.productIds, "Stock query");
        const stock = await getStockByProductIds(sql, ids);
        return { items: [...new Set(ids)].flatMap((id) => stock.get(id) ?? []) };
      },
    },
  };
}
