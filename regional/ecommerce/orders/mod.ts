/**
 * @module
 * The order context of e-commerce (seed 003): orders with Idempotency-Key, their lifecycle
 * PENDING → RESERVED → PAID → FULFILLED (or CANCELED), each transition announced through the outbox.
 */
export { ordersMigrations } from "./migrations.ts";
export { createOrderRoutes } from "./routes.ts";
export type { OrderRoutesDeps } from "./order_deps.ts";
export {
  canonicalJson,
  IDEMPOTENCY_KEY_HEADER,
  idempotencyMiddleware,
  type IdempotencyOptions,
  IDEMPOTENT_REPLAYED_HEADER,
  purgeExpiredIdempotencyKeys,
} from "./idempotency.ts";
export { ORDER_TRANSITIONS, type OrderItemView, type OrderView } from "./order_store.ts";
export { PAYMENT_DECLINED_REASON, RESERVATION_EXPIRED_REASON } from "./pay_order.ts";
export { type OrderLapse, type OrderLapseOptions, startOrderLapse } from "./order_lapse.ts";
export { ORDER_LIMITS } from "./schemas.ts";
