/**
 * @module
 * The inventory gRPC client: `StockReservations` (regional/ecommerce/contracts.ts) over the `Inventory`
 * service. Every call has a deadline (2 s by default) and is retried only on UNAVAILABLE, at most 3
 * attempts with capped exponential backoff (seed 003 section 8); every method is idempotent on the server,
 * so a retry after a lost answer is safe. Failures are `ProblemError`s: `COMMON.UPSTREAM_UNAVAILABLE`,
 * `COMMON.UPSTREAM_TIMEOUT`, or the server's own code (`COMMON.VALIDATION_FAILED`, `COMMON.CONFLICT` …).
 */
import { createGrpcClient, type GrpcRetryOptions } from "../../../../shared/adapters/grpc/mod.ts";
import type { ReservationItem, ReserveOutcome, StockReservations } from "../../contracts.ts";
import type { StockView } from "../stock.ts";
import { inventoryClientConstructor, type ReserveResponseMessage, type StockItemMessage } from "../_proto.ts";

/** Deadline of one call, all attempts included. */
export const INVENTORY_DEADLINE_MS_DEFAULT = 2_000;

/** Seed 003: "Inventory Reserve gRPC — exponential (bounded), 3 attempts". */
export const INVENTORY_RETRY: GrpcRetryOptions = Object.freeze({ maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 400 });

export interface InventoryClientOptions {
  /** Budget of one call, retries and backoffs included. @default 2000 */
  readonly deadlineMs?: number;
}

export interface InventoryClient extends StockReservations {
  /** Stock of the known products among `productIds` (1..100 UUIDs). */
  queryStock(productIds: readonly string[]): Promise<StockView[]>;
  /** Closes the channel; later calls fail with `COMMON.UPSTREAM_UNAVAILABLE`. */
  close(): void;
}

/** A client of the inventory service at `address` (`host:port`). Connects lazily, on the first call. */
export function createInventoryClient(address: string, options?: InventoryClientOptions): InventoryClient {
  const grpc = createGrpcClient(inventoryClientConstructor(), address, {
    deadlineMs: options?.deadlineMs ?? INVENTORY_DEADLINE_MS_DEFAULT,
    retry: INVENTORY_RETRY,
  });
  return {
    async reserve(input: {
      readonly reservationId: string;
      readonly items: readonly ReservationItem[];
      readonly ttlSec: number;
    }): Promise<ReserveOutcome> {
      const response = await grpc.call<ReserveResponseMessage>("ReserveStock", {
        reservationId: input.reservationId,
        items: input.items.map((item) => ({ productId: item.productId, qty: item.qty })),
        ttlSeconds: input.ttlSec,
      });
      if (response.ok) return { ok: true };
      return {
        ok: false,
        productId: response.failedProductId,
        requested: response.requested,
        available: response.available,
      };
    },
    async release(reservationId: string): Promise<void> {
      await grpc.call("ReleaseStock", { reservationId });
    },
    async confirm(reservationId: string): Promise<void> {
      await grpc.call("ConfirmReservation", { reservationId });
    },
    async commit(reservationId: string): Promise<void> {
      await grpc.call("CommitReservation", { reservationId });
    },
    async queryStock(productIds: readonly string[]): Promise<StockView[]> {
      const response = await grpc.call<{ items: StockItemMessage[] }>("QueryStock", { productIds });
      return response.items.map((item) => ({ ...item }));
    },
    close: () => grpc.close(),
  };
}
