/**
 * @module
 * Partner webhooks (seed 003 section 4): subscriptions API, a dispatcher from the order events to a
 * RabbitMQ work queue, and a delivery worker that signs (Standard Webhooks + X-BV-Signature), retries on
 * a jittered schedule, trips a per-endpoint circuit, and dead-letters with a failure event.
 */
export { REPLICATED_WEBHOOK_TABLES, webhooksMigrations } from "./migrations.ts";
export {
  DEFAULT_DELIVERY_TIMEOUT_MS,
  DEFAULT_SECRET_OVERLAP_MS,
  startWebhooks,
  type Webhooks,
  type WebhooksDeps,
} from "./start_webhooks.ts";
export { DEFAULT_RETRY_DELAYS_MS, type DeliveryMessage, deliveryQueues } from "./delivery_queues.ts";
export { deliveryIdOf, WEBHOOK_EVENT_TYPES } from "./dispatcher.ts";
export type { BreakerOptions } from "./delivery_worker.ts";
export { WEBHOOK_EGRESS_MODES, type WebhookEgress } from "./egress_policy.ts";
export { DELIVERY_ATTEMPTS_RETAIN_MS_DEFAULT, purgeDeliveryAttempts } from "./delivery_attempts_purge.ts";
