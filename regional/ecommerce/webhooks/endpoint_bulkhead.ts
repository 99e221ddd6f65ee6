/**
 * @module
 * The per-endpoint bulkhead of the delivery worker: at most `limit` attempts in flight per destination origin in
 * one process, so a partner that answers slowly (2xx after 10 s: its circuit stays closed) cannot take every
 * prefetch slot of the lanes and delay every other partner's deliveries.
 *
 * A delivery whose endpoint is full is not sent and not queued in memory (that would hold its prefetch slot): the
 * worker parks it with {@linkcode deferDelivery}, republished to its lane with a deferral count, from where it goes
 * on untried to the lane's first retry queue, the path a delivery whose secret did not open takes. It uses up no
 * attempt. After {@linkcode ENDPOINT_DEFERRALS_MAX} deferrals it fails for good, so a delivery cannot cycle for ever
 * behind an endpoint that never keeps up.
 *
 * Keyed by origin (scheme, host, port), not subscription: a partner may hold 25 subscriptions to one URL, which
 * per-subscription slots would multiply by 25, and the resource a slow endpoint exhausts is its server's capacity,
 * which all of them share. The price: partners sharing one host (a hosted webhook inbox) share its slots.
 *
 * Not cockatiel's `bulkhead`: that is one pool; keyed use would still need this map of pools and their removal
 * when idle, and it signals a full pool by throwing. A counter per key, released in `finally` and deleted at zero,
 * is smaller and cannot leak.
 */
import client from "prom-client";
import { metrics } from "../../../shared/observability/mod.ts";
import type { QueueMessage, WorkQueue } from "../../../shared/ports/mod.ts";

/** Attempts in flight per destination origin and process (`BV_WEBHOOK_ENDPOINT_CONCURRENCY`). */
export const ENDPOINT_CONCURRENCY_DEFAULT = 4;
export const ENDPOINT_CONCURRENCY_MAX = 1_000;
/** Deferrals after which a delivery fails for good: at least 51 min at the default first retry delay (30 s × 0.85). */
export const ENDPOINT_DEFERRALS_MAX = 120;
/** Header counting how often a delivery was deferred because its endpoint was full. */
export const DEFERRALS_HEADER = "x-webhook-deferrals";
/** What {@linkcode EndpointBulkhead.tryRun} resolves to when the endpoint had no free slot. */
export const ENDPOINT_FULL: unique symbol = Symbol("ENDPOINT_FULL");

const deferralsTotal = new client.Counter({
  name: "bv_webhook_deliveries_deferred_total",
  help: "Webhook deliveries deferred to the first retry delay because their endpoint had " +
    "BV_WEBHOOK_ENDPOINT_CONCURRENCY attempts in flight (no request, no attempt used)",
  registers: [metrics.registry],
});

export interface EndpointBulkhead {
  /** Slots per key. */
  readonly limit: number;
  /** Runs `task` in one of `key`'s slots, freed when it settles; resolves ENDPOINT_FULL, not running it, if none is. */
  tryRun<T>(key: string, task: () => Promise<T>): Promise<T | typeof ENDPOINT_FULL>;
  /** Tasks in flight for `key`. */
  inFlight(key: string): number;
  /** Keys with a task in flight: an idle key holds no entry. */
  readonly keys: number;
}

/** A bulkhead of `limit` slots per key. */
export function createEndpointBulkhead(limit: number): EndpointBulkhead {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > ENDPOINT_CONCURRENCY_MAX) {
    throw new RangeError(`Endpoint concurrency must be 1 to ${ENDPOINT_CONCURRENCY_MAX}, got ${limit}`);
  }
  const inFlight = new Map<string, number>();
  return {
    limit,
    async tryRun(key, task) {
      const taken = inFlight.get(key) ?? 0;
      if (taken >= limit) return ENDPOINT_FULL;
      inFlight.set(key, taken + 1);
      try {
        return await task();
      } finally {
        const left = inFlight.get(key)! - 1;
        if (left > 0) inFlight.set(key, left);
        else inFlight.delete(key);
      }
    },
    inFlight: (key) => inFlight.get(key) ?? 0,
    get keys() {
      return inFlight.size;
    },
  };
}

/** The bulkhead key of a destination: its origin (`https://hooks.example:8443`; host lower-cased, default port). */
export function endpointOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    // Stored URLs were validated; should one not parse, it is its own endpoint.
    return url;
  }
}

/** The final error of a delivery deferred ENDPOINT_DEFERRALS_MAX times. */
export function endpointBusyError(endpoint: string, limit: number): string {
  return `Not sent: ${endpoint} had ${limit} deliveries in flight at each of ${ENDPOINT_DEFERRALS_MAX} tries ` +
    "(BV_WEBHOOK_ENDPOINT_CONCURRENCY): it answers too slowly for the deliveries it gets";
}

/** How often the delivery was deferred so far (0 without the header). */
export function deferralsOf(message: QueueMessage): number {
  const deferrals = Number(message.headers[DEFERRALS_HEADER] ?? "0");
  return Number.isSafeInteger(deferrals) && deferrals > 0 ? deferrals : 0;
}

/**
 * Parks a delivery whose endpoint is full: republished (confirmed) to its lane with the deferral count, from where
 * the worker passes it on untried to the first retry queue. It holds no prefetch slot while it waits and keeps its
 * attempts (they are counted by attempt rows, and none is written); the caller acks the original. Resolves false,
 * parking nothing, once the delivery was deferred ENDPOINT_DEFERRALS_MAX times: the caller fails it for good.
 */
export async function deferDelivery(queue: WorkQueue, lane: string, message: QueueMessage): Promise<boolean> {
  const deferrals = deferralsOf(message);
  if (deferrals >= ENDPOINT_DEFERRALS_MAX) return false;
  await queue.publish(lane, message.body, {
    id: message.id,
    headers: { ...message.headers, [DEFERRALS_HEADER]: String(deferrals + 1) },
  });
  deferralsTotal.inc();
  return true;
}
