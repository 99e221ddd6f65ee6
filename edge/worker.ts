/**
 * @module
 * The edge worker: a Hono app on web-standard APIs only (fetch, Headers, streams, Web Crypto), so it could
 * run on Cloudflare Workers; locally Deno serves it on port 8080. Per request, in this order: a per-client
 * rate limit; JWT pre-auth (mutations and private reads need a token, any token present must be valid);
 * a per-subject rate limit; then the flash-sale fan-out, a WebSocket proxied to its sticky region, the
 * hot-query cache for public reads, or the proxy. Each request goes to the region `region_router.ts`
 * chooses from the client's hint (`x-bv-region`) and the measured health and latency of each region
 * (probed on `/readyz`), and a client without a hint stays on the region it was given while that region is
 * healthy (`region_affinity.ts`); idempotent requests that fail to connect are retried once on the next region.
 * Every request carries a `traceparent` and `Correlation-Id` to the region and back (`trace.ts`).
 */
import { EDGE_CONSOLE_LOG, type EdgeOptions } from "./edge_options.ts";
import { createEdgeApp } from "./edge_app.ts";
import { edgeMetricsText } from "./edge_metrics.ts";
import { createCachedReads } from "./cached_read.ts";
import { createFlashSaleFanout } from "./flash_sale_fanout.ts";
import { type CacheEntryInfo, createHotCache, type PurgeTarget } from "./hot_cache.ts";
import { createHttpRoute, type RegionState } from "./http_route.ts";
import { followInvalidations } from "./invalidation_stream.ts";
import { createPreAuth } from "./pre_auth.ts";
import { createRateLimiter, type RateLimiter } from "./rate_limiter.ts";
import { createRegionRouter, type RegionHealth } from "./region_router.ts";
import { createRegionAffinity, REGION_AFFINITY_DEFAULTS } from "./region_affinity.ts";
import { createRequestPipeline } from "./request_pipeline.ts";
import { defaultClientIdOf, peerAddressOf } from "./client_request.ts";
import type { Hono } from "hono";

export * from "./edge_options.ts";
export { IDENTITY_HEADERS, STICKY_COOKIE } from "./client_request.ts";
export { EDGE_BODY_BYTES_MAX } from "./request_pipeline.ts";

export interface Edge {
  readonly app: Hono;
  /** Probes every region once. */
  checkHealth(): Promise<void>;
  /** Starts periodic probes (after one immediate probe) and the invalidation streams. */
  start(): Promise<void>;
  /**
   * Stops probes and invalidation streams, ends every event stream the edge serves (fan-out and proxied, each
   * with a last comment) and waits for background refreshes. `start()` serves streams again.
   */
  stop(): Promise<void>;
  /** Each region's health and latency EWMA, in preference order. */
  health(): readonly RegionHealth[];
  /** Drops cached reads by key or by predicate; returns how many went (0 without a cache). */
  purge(target: PurgeTarget): number;
  /** Drops every cached read about `productId`, and every listing and GraphQL read (they may contain it). */
  purgeProduct(productId: string): number;
}

/** The edge for `options`: wiring only; the request pipeline is `request_pipeline.ts`, routing `http_route.ts`. */
export function createEdge(options: EdgeOptions): Edge {
  const fetchFn = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const healthTimeoutMs = options.healthTimeoutMs ?? 1_000;
  const states: RegionState[] = options.regions.map((region) => ({
    region,
    forwardHeaders: Object.freeze({ "x-bv-edge-region": region.name }),
  }));
  const fanout = options.flashSales && createFlashSaleFanout(options.regions, {
    ...options.flashSales,
    upstream: { fetch: fetchFn, ...options.flashSales.upstream },
  });
  // A region that goes out takes its flash-sale clients with it: they reconnect and land on a healthy one.
  const router = createRegionRouter(options.regions.map((r) => r.name), options.routing, (name, healthy) => {
    if (!healthy) fanout?.closeRegion(name);
  });
  const affinity = createRegionAffinity(options.regions.map((r) => r.name), router, options.affinity, now);
  const counters = {
    requests: 0,
    failovers: 0,
    webSockets: 0,
    stickyHonoured: 0,
    noRegion: 0,
    authRejected: 0,
    rateLimited: 0,
    purged: 0,
    cache: { hits: 0, stale: 0, misses: 0, notModified: 0 },
  };
  // Aborted by stop(): main.ts stops the edge when the lifecycle's drain begins, so proxied event streams end then.
  let stopping = new AbortController();
  const http = createHttpRoute({
    states,
    router,
    affinity,
    affinityTtlMs: options.affinity?.ttlMs ?? REGION_AFFINITY_DEFAULTS.ttlMs,
    fetch: fetchFn,
    upstreamTimeoutMs: options.upstreamTimeoutMs ?? 5_000,
    counters,
    stopping: () => stopping.signal,
  });
  const rateLimit = options.rateLimit;
  const limiter = (rate: "perClient" | "perSubject"): RateLimiter | undefined =>
    rateLimit && createRateLimiter({ ...rateLimit[rate], bucketsMax: rateLimit.bucketsMax, now });
  const cache = options.cache && createHotCache(options.cache);
  const background = new Set<Promise<unknown>>();
  let timer: ReturnType<typeof setInterval> | undefined;

  async function probe(state: RegionState): Promise<void> {
    const name = state.region.name;
    const started = performance.now();
    try {
      const response = await fetchFn(`${state.region.url}/readyz`, { signal: AbortSignal.timeout(healthTimeoutMs) });
      await response.body?.cancel();
      router.recordProbe(
        name,
        response.ok
          ? { kind: "ready", latencyMs: performance.now() - started }
          : { kind: "not-ready", detail: `readyz answered ${response.status}` },
      );
    } catch (error) {
      router.recordProbe(name, { kind: "failed", detail: (error as Error).message });
    }
  }

  const cachedReads = cache && createCachedReads({
    cache,
    now,
    forward: (request, region, trace, clientAddress) =>
      http.forward(request, { trace, first: http.byName.get(region), clientAddress }),
    staleAllowed: (region) => {
      const state = http.byName.get(region);
      return state?.follower === undefined || state.follower.connected;
    },
    track: (work) => {
      background.add(work);
      void work.finally(() => background.delete(work));
    },
    bodyTimeoutMs: options.upstreamTimeoutMs ?? 5_000,
    counters: counters.cache,
  });

  function purge(target: PurgeTarget): number {
    const purged = cache?.purge(target) ?? 0;
    counters.purged += purged;
    return purged;
  }

  function purgeProduct(productId: string): number {
    // Stored ids are lower case (`productIdOfPath`): product ids are case-insensitive UUIDs.
    const id = productId.toLowerCase();
    return purge((entry: CacheEntryInfo) => entry.productId === undefined || entry.productId === id);
  }

  function metricsText(): string {
    return edgeMetricsText({
      counters,
      cache: cache?.stats(),
      regions: router.health(),
      invalidationStreams: states.filter((s) => s.follower).map((s) => ({
        region: s.region.name,
        up: s.follower!.connected,
      })),
      flashSales: fanout?.stats(),
    });
  }

  function startFollowers(): void {
    if (cache === undefined || options.cache?.followInvalidations === false) return;
    for (const state of states) {
      const name = state.region.name;
      state.follower ??= followInvalidations(state.region.url, {
        fetch: fetchFn,
        // Purges sent while the stream was down are lost: what this region's entries say may be stale.
        onConnected: () => void purge((entry) => entry.region === name),
        onPurge: ({ productId }) => void purgeProduct(productId),
      });
    }
  }

  const clientAddressOf = options.clientAddressOf ?? peerAddressOf;
  const clientIdOf = rateLimit?.clientIdOf;
  const handle = createRequestPipeline({
    http,
    clientOf: (request, env) => {
      const address = clientAddressOf(request, env);
      return { id: clientIdOf?.(request, env) ?? defaultClientIdOf(request, address), address };
    },
    clientLimiter: limiter("perClient"),
    subjectLimiter: limiter("perSubject"),
    preAuth: options.auth && createPreAuth({ ...options.auth, now, fetch: fetchFn }),
    fanout,
    cachedReads,
    webSocket: options.webSocket,
    counters,
  });

  const edge: Edge = {
    app: createEdgeApp({ health: () => router.health(), metricsText, handle, log: options.log ?? EDGE_CONSOLE_LOG }),
    checkHealth: async () => {
      await Promise.all(states.map(probe));
    },
    start: async () => {
      if (stopping.signal.aborted) stopping = new AbortController();
      startFollowers();
      fanout?.start();
      await edge.checkHealth();
      timer ??= setInterval(() => void edge.checkHealth(), options.healthIntervalMs ?? 2_000);
    },
    stop: async () => {
      stopping.abort();
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      await Promise.all(states.map(async (state) => {
        await state.follower?.stop();
        state.follower = undefined;
      }));
      await fanout?.stop();
      await Promise.allSettled([...background]);
    },
    health: () => router.health(),
    purge,
    purgeProduct,
  };
  return edge;
}
