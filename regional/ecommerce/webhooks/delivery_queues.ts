/**
 * @module
 * The RabbitMQ topology of deliveries, and how jitter is obtained with per-queue TTLs. A TTL queue delays
 * every message by the same time (per-message TTL would block expiry behind the head), so jitter cannot be
 * per message. Instead deliveries are spread over {@linkcode DELIVERY_LANES} lanes; each lane is a queue
 * with its own retry queues whose delays are the schedule scaled by the lane's factor (0.85, 0.95, 1.05,
 * 1.15). A delivery stays in its lane (chosen by hashing its id), so deliveries that failed together — an
 * endpoint outage — come back spread over ±15 % of every step instead of all at once.
 */
import type { WorkQueue } from "../../../shared/ports/mod.ts";
import { dlqQueueOf } from "../../../shared/ports/mod.ts";

/** Seed 003 section 4: 30 s, 2 m, 5 m, 15 m, 30 m, then the DLQ (5 retries, 6 attempts in all). */
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = Object.freeze([30_000, 120_000, 300_000, 900_000, 1_800_000]);
/** Jitter factor of each lane; their number is the number of lanes. */
export const LANE_FACTORS: readonly number[] = Object.freeze([0.85, 0.95, 1.05, 1.15]);
export const DELIVERY_LANES = LANE_FACTORS.length;
const QUEUE_PREFIX = "ecommerce.webhooks.deliveries";

/** The queue of lane `lane` (0-based). Its DLQ is `<queue>.dlq`. */
export function laneQueueOf(lane: number): string {
  return `${QUEUE_PREFIX}.${lane}`;
}

/** Every lane queue, and every dead-letter queue, for operators and tests. */
export function deliveryQueues(): { readonly queues: readonly string[]; readonly dlqs: readonly string[] } {
  const queues = LANE_FACTORS.map((_, lane) => laneQueueOf(lane));
  return { queues, dlqs: queues.map(dlqQueueOf) };
}

/** The lane of a delivery: stable for its id (a re-dispatched duplicate lands in the same lane). */
export function laneOf(deliveryId: string): number {
  let hash = 0;
  for (let i = 0; i < deliveryId.length; i++) hash = (hash * 31 + deliveryId.charCodeAt(i)) >>> 0;
  return hash % DELIVERY_LANES;
}

/** The retry delays of one lane: the schedule scaled by the lane's factor, at least 1 ms. */
export function laneDelaysMs(retryDelaysMs: readonly number[], lane: number): number[] {
  return retryDelaysMs.map((ms) => Math.max(1, Math.round(ms * LANE_FACTORS[lane])));
}

/** Declares every lane with its retry queues and DLQ (idempotent). */
export async function declareDeliveryQueues(queue: WorkQueue, retryDelaysMs: readonly number[]): Promise<void> {
  for (let lane = 0; lane < DELIVERY_LANES; lane++) {
    await queue.declare({ name: laneQueueOf(lane), retryDelaysMs: laneDelaysMs(retryDelaysMs, lane) });
  }
}

/** What a delivery message carries. `body` is the exact request body: signed anew at each attempt. */
export interface DeliveryMessage {
  readonly v: 1;
  readonly deliveryId: string;
  readonly subscriptionId: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly body: string;
}

export function parseDeliveryMessage(text: string): DeliveryMessage {
  const value = JSON.parse(text) as Partial<DeliveryMessage>;
  for (const field of ["deliveryId", "subscriptionId", "eventId", "eventType", "body"] as const) {
    if (typeof value[field] !== "string") throw new TypeError(`Delivery message has no string "${field}"`);
  }
  return value as DeliveryMessage;
}
