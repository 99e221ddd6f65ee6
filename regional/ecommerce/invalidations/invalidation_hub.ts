/**
 * @module
 * The fan-out half of the region's invalidation stream (contract in `edge/README.md`): one process's open
 * `text/event-stream` responses and what they are sent. `publish(productId)` encodes one `event: purge`
 * frame once and enqueues the same bytes to every stream; a timer sends `: heartbeat` comments.
 *
 * Unlike the flash-sale hub there is no replay and no numbering: the contract says a (re)connecting edge
 * drops everything it cached from the region, so a gap is repaired by reconnecting, never by resending.
 * That is also how a slow reader is treated: past `subscriberQueueMax` queued frames its stream is
 * errored (the queue is freed at once) and the edge reconnects and purges. A stream is freed when it is
 * cancelled or its request's signal aborts, whichever comes first (honojs/hono#1770: one alone may not
 * fire). When the server is about to shut down (the service app's shutdown signal) every stream gets a last
 * `: shutting down` comment and ends, so the server's drain is not held up; the edge reconnects.
 */
import client from "prom-client";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log, metrics } from "../../../shared/observability/mod.ts";

export interface InvalidationHubOptions {
  /** Open streams per process; edges hold one per region each, so this is generous. @default 1000 */
  readonly subscribersMax?: number;
  /** Frames queued for a stream that does not read; past it the stream is dropped. @default 1024 */
  readonly subscriberQueueMax?: number;
  /** Comment frames on every stream; the contract asks for at least one per 15 s. @default 15000 */
  readonly heartbeatMs?: number;
}

export interface InvalidationHub {
  /** Sends `event: purge` for `productId` to every open stream; ids outside the contract are ignored. */
  publish(productId: string): void;
  /**
   * Opens a stream tied to `signal` (the request's) that ends when `shutdown` (the server's) aborts; throws a
   * 429 problem when full, 503 once closed or shutting down.
   */
  open(signal: AbortSignal, shutdown?: AbortSignal): Response;
  /** Open streams in this process. */
  subscribers(): number;
  /** Ends every stream and stops the heartbeat. */
  close(): void;
}

/** The contract bounds `productId` to 1–200 characters; the edge ignores anything else. */
export const PRODUCT_ID_CHARS_MAX = 200;

const encoder = new TextEncoder();
const HEARTBEAT = encoder.encode(": heartbeat\n\n");
const CONNECTED = encoder.encode(": connected\n\n");
/** The contract has no event for "reconnect elsewhere"; a comment is allowed and says why the stream ends. */
const SHUTTING_DOWN = encoder.encode(": shutting down; reconnect\n\n");
/** The shutdown signal of a stream opened without one: nothing aborts it. */
const NEVER = new AbortController().signal;

const PURGES_METRIC = "bv_ecommerce_invalidations_published_total";
const DROPPED_METRIC = "bv_ecommerce_invalidation_streams_dropped_total";

/** Purge events published, whatever the number of streams that got them. */
const purgesPublished = (metrics.registry.getSingleMetric(PURGES_METRIC) as client.Counter | undefined) ??
  new client.Counter({
    name: PURGES_METRIC,
    help: "Purge events published on the invalidation stream",
    registers: [metrics.registry],
  });

/** Streams closed by the server because their reader fell behind. */
const streamsDropped = (metrics.registry.getSingleMetric(DROPPED_METRIC) as client.Counter | undefined) ??
  new client.Counter({
    name: DROPPED_METRIC,
    help: "Invalidation streams dropped because the client did not read",
    registers: [metrics.registry],
  });

/** Creates a hub with no streams; `close()` it on shutdown. */
export function createInvalidationHub(options: InvalidationHubOptions = {}): InvalidationHub {
  const subscribersMax = positiveInt("subscribersMax", options.subscribersMax ?? 1_000);
  const queueMax = positiveInt("subscriberQueueMax", options.subscriberQueueMax ?? 1_024);
  const heartbeatMs = positiveInt("heartbeatMs", options.heartbeatMs ?? 15_000);
  /** Open streams, each with what detaches it from its shutdown signal (which outlives it). */
  const streams = new Map<ReadableStreamDefaultController<Uint8Array>, () => void>();
  let closed = false;

  function send(controller: ReadableStreamDefaultController<Uint8Array>, bytes: Uint8Array): void {
    if ((controller.desiredSize ?? 0) <= 0) {
      // Erroring (not closing) discards the queued frames now; the edge reconnects and purges the region.
      streamsDropped.inc();
      log.warn("invalidation stream dropped: the client is not reading", { queued: queueMax });
      drop(controller, new Error(`more than ${queueMax} frames queued`));
      return;
    }
    try {
      controller.enqueue(bytes);
    } catch {
      // Cancelled between the client leaving and our hearing of it.
      drop(controller);
    }
  }

  function forget(controller: ReadableStreamDefaultController<Uint8Array>): boolean {
    const detach = streams.get(controller);
    if (!detach) return false;
    streams.delete(controller);
    detach();
    return true;
  }

  function drop(controller: ReadableStreamDefaultController<Uint8Array>, reason?: Error): void {
    if (!forget(controller)) return;
    try {
      if (reason) controller.error(reason);
      else controller.close();
    } catch {
      // Already closed or errored: nothing left to free.
    }
  }

  const heartbeat = setInterval(() => {
    for (const controller of streams.keys()) send(controller, HEARTBEAT);
  }, heartbeatMs);

  return {
    publish(productId) {
      if (closed || productId.length === 0 || productId.length > PRODUCT_ID_CHARS_MAX) return;
      purgesPublished.inc();
      if (streams.size === 0) return;
      const frame = encoder.encode(`event: purge\ndata: ${JSON.stringify({ productId })}\n\n`);
      for (const controller of streams.keys()) send(controller, frame);
    },
    open(signal, shutdown = NEVER) {
      if (closed || shutdown.aborted) {
        throw new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", "The invalidation stream is shutting down; reconnect");
      }
      if (streams.size >= subscribersMax) {
        throw new ProblemError(
          "COMMON.RATE_LIMITED",
          `This server already holds ${subscribersMax} invalidation streams; retry in a few seconds`,
          { headers: { "retry-after": "5" } },
        );
      }
      let own: ReadableStreamDefaultController<Uint8Array> | undefined;
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          own = controller;
          // A first frame at once, so proxies and the edge see the stream live before any change happens.
          controller.enqueue(CONNECTED);
          const goodbye = () => {
            // Closing lets the client read what is queued first; a reader past its bound is dropped as ever.
            send(controller, SHUTTING_DOWN);
            drop(controller);
          };
          shutdown.addEventListener("abort", goodbye, { once: true });
          streams.set(controller, () => shutdown.removeEventListener("abort", goodbye));
        },
        cancel: () => {
          if (own) forget(own);
        },
      }, new CountQueuingStrategy({ highWaterMark: queueMax }));
      const leave = () => own && drop(own);
      if (signal.aborted) leave();
      else signal.addEventListener("abort", leave, { once: true });
      return new Response(stream, {
        headers: {
          "content-type": "text/event-stream; charset=utf-8",
          // Each connection is a live feed: no shared cache may keep or replay it.
          "cache-control": "no-store",
          // Reverse proxies (nginx) must not buffer an event stream.
          "x-accel-buffering": "no",
        },
      });
    },
    subscribers: () => streams.size,
    close() {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      for (const controller of [...streams.keys()]) drop(controller);
    },
  };
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`createInvalidationHub() ${name} must be a positive integer, got ${value}`);
  }
  return value;
}
