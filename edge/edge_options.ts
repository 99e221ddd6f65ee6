/**
 * @module
 * The options of `createEdge` and their defaults: regions, routing, pre-auth, the hot-query cache, rate
 * limits, flash-sale fan-out and the WebSocket connector.
 */
import type { FlashSaleFanoutOptions } from "./flash_sale_fanout.ts";
import type { TokenBucketRate } from "./rate_limiter.ts";
import type { RegionAffinityOptions } from "./region_affinity.ts";
import type { RegionRouterOptions } from "./region_router.ts";

export interface EdgeRegion {
  readonly name: string;
  /** The region's ingress, for example `http://127.0.0.1:8081`. */
  readonly url: string;
}

export interface EdgeAuthOptions {
  /** Every region's `/.well-known/jwks.json`; tokens signed by a key of any of them pass. */
  readonly jwksUrls: readonly string[];
  readonly issuer: string;
  readonly audience: string;
  /** Bound on one JWKS fetch. @default 2000 */
  readonly jwksTimeoutMs?: number;
  /** How long loaded keys are used before reloading. @default 300_000 */
  readonly jwksCacheMaxAgeMs?: number;
  /** Least time between reloads triggered by unknown `kid`s. @default 30_000 */
  readonly jwksCooldownMs?: number;
}

export interface EdgeCacheOptions {
  /** Longest an entry is served without asking a region (also the staleness bound while a stream is down). */
  readonly ttlMs: number;
  /** After the TTL, how long a stale entry is served while one refresh runs (only while the stream is up). */
  readonly staleWhileRevalidateMs: number;
  readonly entriesMax: number;
  readonly bytesMax: number;
  /** Largest single entry. @default min(1 MiB, bytesMax / 8) */
  readonly entryBytesMax?: number;
  /** Follow each region's invalidation stream from `start()`. @default true */
  readonly followInvalidations?: boolean;
}

export interface EdgeRateLimitOptions {
  /** Per client address (see `clientIdOf`). */
  readonly perClient: TokenBucketRate;
  /** Per verified token subject. */
  readonly perSubject: TokenBucketRate;
  /** Buckets kept per limiter; idle ones go first. @default 10_000 */
  readonly bucketsMax?: number;
  /**
   * The client a request counts against. The default takes the client's address (`EdgeOptions.clientAddressOf`:
   * the connecting address that Deno's server passes as `env.remoteAddr`), or, when that is a trusted proxy
   * (loopback) or absent, the last `X-Forwarded-For` entry (the one our proxy appended).
   */
  readonly clientIdOf?: (request: Request, env: unknown) => string;
}

/**
 * Opens a proxied WebSocket: upgrades `request` and pipes it to `upstream` (`ws://…`, same path and query),
 * adding `setHeaders` to the upstream handshake. Runtime-specific, so injected: Deno passes
 * `proxyWebSocket` (`shared/http/websocket_proxy.ts`); on Workers, `fetch` to the region with the upgrade
 * headers returns the upstream socket and a `WebSocketPair` hands the other end to the client. It must
 * answer 101 once upgraded, and anything else only before upgrading: a 5xx (the region could not take it
 * or could not be reached) makes the edge try another region with the same request; a 4xx (the region's
 * refusal of this client, passed on with its status) goes back to the client as is.
 */
export type WebSocketConnector = (
  request: Request,
  target: {
    readonly upstream: string;
    readonly setHeaders: Readonly<Record<string, string>>;
    /** The client's address (`EdgeOptions.clientAddressOf`), to append to the handshake's `X-Forwarded-For`. */
    readonly clientAddress?: string;
  },
) => Promise<Response>;

/**
 * Where the edge reports failures it did not expect. The shape of `log` in `shared/observability`, which
 * `main.ts` passes; the edge cannot import it itself (it keeps its context in node-only storage).
 */
export interface EdgeLog {
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Without a logger: one JSON line on stderr, shaped like the project's logger's lines. */
export const EDGE_CONSOLE_LOG: EdgeLog = Object.freeze({
  error: (msg: string, fields?: Record<string, unknown>) =>
    console.error(JSON.stringify({ time: new Date().toISOString(), level: "error", service: "edge", msg, ...fields })),
});

export interface EdgeOptions {
  /** In preference order: the first healthy one serves requests without a usable hint. */
  readonly regions: readonly EdgeRegion[];
  /** @default 2000 */
  readonly healthIntervalMs?: number;
  /** Health thresholds, latency EWMA and the hint rule (`region_router.ts`). */
  readonly routing?: RegionRouterOptions;
  /** How long and for how many clients the edge keeps each client on its region (`region_affinity.ts`). */
  readonly affinity?: RegionAffinityOptions;
  /** Bound on one health probe. @default 1000 */
  readonly healthTimeoutMs?: number;
  /** Bound on waiting for a region's response headers. @default 5000 */
  readonly upstreamTimeoutMs?: number;
  /** JWT pre-auth; without it every request passes through unverified (regions still verify). */
  readonly auth?: EdgeAuthOptions;
  /** The hot-query cache for public reads; without it nothing is cached. */
  readonly cache?: EdgeCacheOptions;
  /** Token buckets per client and per subject; without them nothing is limited. */
  readonly rateLimit?: EdgeRateLimitOptions;
  /** Flash-sale SSE fan-out (one upstream per region); without it `/sse/flash-sales` is proxied per client. */
  readonly flashSales?: FlashSaleFanoutOptions;
  /** WebSocket proxying; without it an upgrade request is answered 503 (this deployment cannot proxy it). */
  readonly webSocket?: WebSocketConnector;
  /** Where unexpected failures are logged (their answer is a 500 without details). @default EDGE_CONSOLE_LOG */
  readonly log?: EdgeLog;
  /**
   * The address of the client that sent a request: appended to `X-Forwarded-For` on the way to a region (a
   * client's own `X-Forwarded-For` is passed on and appended to, never taken for its address), and the default
   * client id of the rate limits. Undefined when unknown: the header is then passed on as it came. On Workers:
   * `(request) => request.headers.get("cf-connecting-ip") ?? undefined`.
   * @default the connecting address Deno's server passes as `env.remoteAddr`
   */
  readonly clientAddressOf?: (request: Request, env: unknown) => string | undefined;
  /** Milliseconds since the epoch (cache ages, buckets, token expiry). @default Date.now */
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
}

/**
 * Cache defaults: 10 s TTL is the staleness bound while a region's invalidation stream is down; 30 s of
 * stale-while-revalidate applies only while it is up; 10,000 entries and 64 MiB.
 */
export const EDGE_CACHE_DEFAULTS: EdgeCacheOptions = Object.freeze({
  ttlMs: 10_000,
  staleWhileRevalidateMs: 30_000,
  entriesMax: 10_000,
  bytesMax: 64 * 1024 * 1024,
});

/** Rate defaults: 100 requests/s per client address (bursts of 200), 50/s per user (bursts of 100). */
export const EDGE_RATE_LIMIT_DEFAULTS: EdgeRateLimitOptions = Object.freeze({
  perClient: Object.freeze({ ratePerSec: 100, burst: 200 }),
  perSubject: Object.freeze({ ratePerSec: 50, burst: 100 }),
});
