/**
 * @module
 * The edge side of a region's invalidation stream (contract in README.md), on the shared SSE client
 * (`sse_follower.ts`: reconnects forever with capped, jittered backoff, idle timeout, bounded lines).
 * Events missed while disconnected cannot be replayed, so the caller is told of every (re)connection and
 * drops what it cached from that region.
 */
import { followEventStream } from "./sse_follower.ts";

/** Where each region serves its invalidation stream. */
export const INVALIDATIONS_PATH = "/api/v1/ecommerce/invalidations";

/** One `event: purge` message: the product whose cached reads must go. */
export interface InvalidationEvent {
  readonly productId: string;
}

export interface FollowInvalidationsOptions {
  readonly onPurge: (event: InvalidationEvent) => void;
  /** Called each time the stream is (re)established; purges during the gap are lost. */
  readonly onConnected?: () => void;
  /** Called when an established stream ends, with the reason. */
  readonly onDisconnected?: (reason: string) => void;
  readonly fetch?: typeof fetch;
  /** Bound on waiting for the response headers. @default 5000 */
  readonly connectTimeoutMs?: number;
  /** A stream silent for this long is reconnected (the region sends a heartbeat every 15 s). @default 45_000 */
  readonly idleTimeoutMs?: number;
  /** First reconnect delay; doubles per failed attempt. @default 250 */
  readonly backoffInitialMs?: number;
  /** Largest reconnect delay. @default 30_000 */
  readonly backoffMaxMs?: number;
  /** Longest line or event data accepted; more is a protocol error and the stream is reconnected. @default 4096 */
  readonly lineCharsMax?: number;
  /** Jitter source in [0, 1). @default Math.random */
  readonly random?: () => number;
}

export interface InvalidationFollower {
  /** True while a stream is established. */
  readonly connected: boolean;
  /** Counters for metrics and tests. */
  readonly stats: { connects: number; purges: number; ignored: number };
  /** Closes the stream and stops reconnecting; resolves when nothing is left running. */
  stop(): Promise<void>;
}

const PRODUCT_ID_CHARS_MAX = 200;

/** Follows `${regionUrl}${INVALIDATIONS_PATH}` until `stop()`. */
export function followInvalidations(regionUrl: string, options: FollowInvalidationsOptions): InvalidationFollower {
  const stats = { connects: 0, purges: 0, ignored: 0 };

  function dispatch(event: string, data: string): void {
    if (event !== "purge") return;
    let productId: unknown;
    try {
      productId = (JSON.parse(data) as { productId?: unknown })?.productId;
    } catch {
      productId = undefined;
    }
    if (typeof productId !== "string" || productId.length === 0 || productId.length > PRODUCT_ID_CHARS_MAX) {
      stats.ignored++;
      return;
    }
    stats.purges++;
    options.onPurge({ productId });
  }

  const follower = followEventStream(new URL(INVALIDATIONS_PATH, regionUrl), {
    ...options,
    onEvent: ({ event, data }) => dispatch(event, data),
    onConnected: () => {
      stats.connects++;
      options.onConnected?.();
    },
  });

  return {
    get connected() {
      return follower.connected;
    },
    stats,
    stop: () => follower.stop(),
  };
}
