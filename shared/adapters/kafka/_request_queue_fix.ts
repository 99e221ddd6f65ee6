/**
 * @module
 * Works around kafkajs 2.2.4's idle timer loop (tulios/kafkajs#1556, #1704; fix proposed in #1667 and #1768,
 * never released): `RequestQueue.scheduleCheckPendingRequests` re-arms a `setTimeout` after every check,
 * and with nothing pending and no broker throttle its delay is `-1 - Date.now()`, which runtimes clamp to
 * 1 ms — so every broker connection of every client wakes its process about a thousand times a second
 * forever (on Deno also the `TimeoutNegativeWarning`). Seen here as ~400 event-loop wake-ups a second in an
 * idle deployable (`strace -c`) and a few percent of a core per process. The replacement schedules a check
 * only when something is pending or the broker asked to throttle, as the proposed fix does; a request that
 * cannot be sent at once is queued as `pending` and scheduled, and a completed or timed-out request checks
 * the queue itself, so nothing waits on the removed loop. Imported for its effect by the Kafka adapter only.
 */
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

/** kafkajs's own interval for a queue with pending requests and no throttle (`requestQueue/index.js`). */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

interface RequestQueueInternals {
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  pending: unknown[];
  checkPendingRequests(): void;
}

const prototype = (RequestQueue as unknown as { prototype: RequestQueueInternals & Record<string, unknown> })
  .prototype;
if (typeof prototype?.scheduleCheckPendingRequests !== "function") {
  // A kafkajs upgrade moved the method: fail loudly at start rather than silently keep the CPU drain.
  throw new Error("kafkajs RequestQueue.scheduleCheckPendingRequests not found: revisit _request_queue_fix.ts");
}

prototype.scheduleCheckPendingRequests = function (this: RequestQueueInternals): void {
  if (this.throttleCheckTimeoutId) return;
  const throttledForMs = this.throttledUntil - Date.now();
  let delayMs: number;
  if (this.pending.length > 0) delayMs = throttledForMs > 0 ? throttledForMs : CHECK_PENDING_REQUESTS_INTERVAL_MS;
  else if (throttledForMs > 0) delayMs = throttledForMs;
  else return;
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, delayMs);
};

/** True once the workaround is installed (for the adapter's test). */
export const requestQueueFixInstalled = true;
