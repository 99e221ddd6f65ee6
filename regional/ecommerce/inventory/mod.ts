/**
 * @module
 * The inventory context of e-commerce (see README.md): stock levels and adjustments (REST), stock
 * reservations (gRPC), reservation expiry, and the `inventory:{productId}` cache projection.
 */
export { inventoryMigrations } from "./migrations.ts";
export {
  ADJUSTMENT_DELTA_MAX,
  ADJUSTMENT_REASON_CHARS_MAX,
  applyStockAdjustment,
  getStockByProductIds,
  INVENTORY_PRODUCER,
  type StockAdjustment,
  type StockAdjustmentResult,
  type StockView,
} from "./stock.ts";
export {
  commitReservation,
  confirmReservation,
  expireReservations,
  releaseReservation,
  RESERVATION_ITEMS_MAX,
  RESERVATION_QTY_MAX,
  RESERVATION_TTL_SEC_MAX,
  type ReserveInput,
  reserveStock,
} from "./reservations.ts";
export { type ReservationExpiry, type ReservationExpiryOptions, startReservationExpiry } from "./reservation_expiry.ts";
export { createInventoryGrpcService, type InventoryGrpcDeps } from "./grpc_service.ts";
export { INVENTORY_SERVICE_NAME } from "./_proto.ts";
export {
  createInventoryClient,
  INVENTORY_DEADLINE_MS_DEFAULT,
  INVENTORY_RETRY,
  type InventoryClient,
  type InventoryClientOptions,
} from "./adapters/grpc_client.ts";
export { createInventoryRoutes, type InventoryRoutesDeps } from "./routes.ts";
export {
  inventoryCacheKey,
  type InventoryCacheProjectionOptions,
  type InventorySnapshot,
  startInventoryCacheProjection,
} from "./cache_projection.ts";
export { type ReleaseOnCancelOptions, startReleaseOnCancel } from "./release_on_cancel.ts";
