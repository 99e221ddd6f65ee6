/**
 * @module
 * How long the e-commerce consumers that nobody waits on let the event log hold records so it can hand them
 * over together (`SubscribeOptions.batchWindowMs`). Every order emits `order.created` and a `stock.adjusted`,
 * and with one fetch per record per consumer group a trickle of orders cost more than a flood: at 50 orders/s
 * each group's fetch was answered once per record, on the broker and in this process (docs/ARCHITECTURE.md,
 * "E-commerce speed"). The order notifications (`/ws/orders`, `/sse/orders`) and flash sales stay at 0:
 * people wait on those.
 */

/**
 * Cache projections and invalidations, revenue analytics and the partner-webhook dispatcher: up to this much
 * later, in exchange for one fetch per window instead of one per record. Caches were already eventually
 * consistent (a projection lags its event), webhooks are retried over seconds, revenue is read by people.
 */
export const BACKGROUND_CONSUMER_WINDOW_MS = 200;
