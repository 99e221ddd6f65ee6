/**
 * @module
 * Order notifications (seed 003 "notification-service"): order events pushed over WebSocket `/ws/orders`
 * and SSE `/sse/orders/{id}`, resumable by event id, and `order_status:{orderId}` in the cache.
 */
export { notificationsMigrations } from "./migrations.ts";
export {
  type OrderNotifications,
  type OrderNotificationsDeps,
  startOrderNotifications,
} from "./start_order_notifications.ts";
export { type OrderStatusEntry, orderStatusKey } from "./order_status_cache.ts";
export {
  CLOSE_CODES,
  DEFAULT_LIMITS,
  type FrameErrorCode,
  type NotificationLimits,
  type OrderEventView,
  PERSONAL_CHANNEL,
  type ServerFrame,
} from "./protocol.ts";
