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
import { Hono } from "hono";
import type { Principal } from "../shared/auth/verifier.ts";
import { PROXY_ERROR_HEADER, proxyRequest } from "../shared/http/proxy.ts";
import { type CacheableRead, cacheableReadOf, createCachedReads } from "./cached_read.ts";
import { edgeProblem } from "./edge_problem.ts";
import { GRAPHQL_BODY_BYTES_MAX, type GraphqlRead, readGraphqlRequest } from "./graphql_read.ts";
import { type CacheEntryInfo, createHotCache, type PurgeTarget } from "./hot_cache.ts";
import { followInvalidations, type InvalidationFollower } from "./invalidation_stream.ts";
import { createPreAuth } from "./pre_auth.ts";
import type { EdgeOptions, EdgeRegion } from "./edge_options.ts";
import { edgeMetricsText } from "./edge_metrics.ts";
import { createFlashSaleFanout, FLASH_SALES_PATH } from "./flash_sale_fanout.ts";
import { createRateLimiter, type RateLimiter } from "./rate_limiter.ts";
import { createRegionRouter, type RegionHealth } from "./region_router.ts";
import { createRegionAffinity, REGION_AFFINITY_DEFAULTS } from "./region_affinity.ts";
import { queryTokenAllowed, tokenRequired } from "./route_policy.ts";
import { type EdgeTrace, edgeTraceOf, withTraceHeaders } from "./trace.ts";
import { cookieOf, defaultClientIdOf, STICKY_COOKIE, withoutIdentityHeaders } from "./client_request.ts";
import { openWebSocket, type WebSocketRouteDeps } from "./websocket_route.ts";

export * from "./edge_options.ts";
export { IDENTITY_HEADERS, STICKY_COOKIE } from "./client_request.ts";

interface RegionState {
  readonly region: EdgeRegion;
  /** The headers the edge adds when forwarding to this region, built once. */
  readonly forwardHeaders: Readonly<Record<string, string>>;
  follower?: InvalidationFollower;
}

export interface Edge {
  readonly app: Hono;
  /** Probes every region once. */
  checkHealth(): Promise<void>;
  /** Starts periodic probes (after one immediate probe) and the invalidation streams. */
  start(): Promise<void>;
  /** Stops probes and invalidation streams and waits for background refreshes. */
  stop(): Promise<void>;
  /** Each region's health and latency EWMA, in preference order. */
  health(): readonly RegionHealth[];
  /** Drops cached reads by key or by predicate; returns how many went (0 without a cache). */
  purge(target: PurgeTarget): number;
  /** Drops every cached read about `productId`, and every listing and GraphQL read (they may contain it). */
  purgeProduct(productId: string): number;
}

/** Whole requests the edge lets through to a region; bigger ones are refused here (regions bound them too). */
export const EDGE_BODY_BYTES_MAX = 1024 * 1024;

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
const READS = new Set(["GET", "HEAD", "OPTIONS"]);
const VERIFIED_SUB = "x-bv-verified-sub";

/** A public read the hot cache answers (it sets the trace headers itself: see `cached_read.ts`). */
interface CacheRoute {
  readonly request: Request;
  readonly region: string;
  readonly read: CacheableRead;
}

/** Where a request goes: an answer already made (trace headers still to set), or a cache read. */
type Routed = Response | CacheRoute;

export function createEdge(options: EdgeOptions): Edge {
  const fetchFn = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const healthTimeoutMs = options.healthTimeoutMs ?? 1_000;
  const upstreamTimeoutMs = options.upstreamTimeoutMs ?? 5_000;
  const states: RegionState[] = options.regions.map((region) => ({
    region,
    forwardHeaders: Object.freeze({ "x-bv-edge-region": region.name }),
  }));
  const byName = new Map(states.map((state) => [state.region.name, state]));
  const fanout = options.flashSales && createFlashSaleFanout(options.regions, {
    ...options.flashSales,
    upstream: { fetch: fetchFn, ...options.flashSales.upstream },
  });
  // A region that goes out takes its flash-sale clients with it: they reconnect and land on a healthy one.
  const router = createRegionRouter(options.regions.map((r) => r.name), options.routing, (name, healthy) => {
    if (!healthy) fanout?.closeRegion(name);
  });
  const affinity = createRegionAffinity(options.regions.map((r) => r.name), router, options.affinity, now);
  // The HTTP twin of the WebSocket cookie, for the whole site; it lasts as long as an idle pin.
  const affinityCookieSuffix = `; Path=/; Max-Age=${
    Math.ceil((options.affinity?.ttlMs ?? REGION_AFFINITY_DEFAULTS.ttlMs) / 1000)
  }; HttpOnly; SameSite=Lax`;
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
  const preAuth = options.auth && createPreAuth({ ...options.auth, now, fetch: fetchFn });
  const rateLimit = options.rateLimit;
  const clientLimiter: RateLimiter | undefined = rateLimit &&
    createRateLimiter({ ...rateLimit.perClient, bucketsMax: rateLimit.bucketsMax, now });
  const subjectLimiter: RateLimiter | undefined = rateLimit &&
    createRateLimiter({ ...rateLimit.perSubject, bucketsMax: rateLimit.bucketsMax, now });
  const clientIdOf = rateLimit?.clientIdOf ?? defaultClientIdOf;
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

  /** The region the router chooses for `hint`; `exclude` skips one already tried. */
  function pick(hint: string | null | undefined, exclude?: RegionState): RegionState | undefined {
    const name = router.choose(hint, exclude?.region.name);
    return name === undefined ? undefined : byName.get(name);
  }

  /** The sticky region when it is healthy, else the router's choice for the request's hint. */
  function pickSticky(request: Request, sticky: string | undefined): RegionState | undefined {
    const state = sticky === undefined ? undefined : byName.get(sticky);
    if (state !== undefined && router.isHealthy(sticky!)) {
      counters.stickyHonoured++;
      return state;
    }
    return pick(request.headers.get("x-bv-region"));
  }

  function headersFor(state: RegionState, trace: EdgeTrace, verifiedSub?: string): Record<string, string> {
    const headers: Record<string, string> = {
      ...state.forwardHeaders,
      traceparent: trace.traceparent,
      "correlation-id": trace.correlationId,
    };
    if (verifiedSub !== undefined) headers[VERIFIED_SUB] = verifiedSub;
    return headers;
  }

  /**
   * The region for a request of `clientId`: a healthy hinted region for this request alone (the router's hint
   * rule), else the client's pinned region (`region_affinity.ts`), pinned from now on.
   */
  function regionFor(
    request: Request,
    clientId: string,
    principal: Principal | undefined,
    graphql: GraphqlRead | undefined,
  ): RegionState | undefined {
    const hint = request.headers.get("x-bv-region");
    if (hint !== null && byName.has(hint) && router.isHealthy(hint)) return pick(hint);
    const name = affinity.regionFor({
      subject: principal?.userId,
      address: clientId,
      cookie: cookieOf(request, STICKY_COOKIE),
      write: graphql === undefined ? !READS.has(request.method) : graphql.kind !== "read",
    });
    return name === undefined ? undefined : byName.get(name);
  }

  /** Tells a browser its region when its cookie says otherwise (rarely: a cookie defeats shared caches). */
  function withAffinityCookie(request: Request, response: Response): Response {
    const region = response.headers.get("x-bv-region");
    if (region !== null && cookieOf(request, STICKY_COOKIE) !== region && !request.headers.has("x-bv-region")) {
      response.headers.append("set-cookie", `${STICKY_COOKIE}=${region}${affinityCookieSuffix}`);
    }
    return response;
  }

  /**
   * Sends `request` to `first` (else the router's choice), once more to the next one when it is safe and the
   * first is unreachable.
   */
  async function forward(
    request: Request,
    verifiedSub?: string,
    trace: EdgeTrace = edgeTraceOf(request.headers),
    first?: RegionState,
  ): Promise<Response> {
    const hint = request.headers.get("x-bv-region");
    let state: RegionState | undefined = first ?? pick(hint);
    if (state === undefined) return noRegion();
    // Only requests without a body and with idempotent semantics can be sent twice safely.
    const retryable = IDEMPOTENT.has(request.method) && request.body === null;
    for (let attempt = 0;; attempt++) {
      const response: Response = await proxyRequest(request, {
        upstream: state.region.url,
        headersTimeoutMs: upstreamTimeoutMs,
        fetch: fetchFn,
        setHeaders: headersFor(state, trace, verifiedSub),
      });
      if (response.headers.get(PROXY_ERROR_HEADER) !== "unreachable") {
        response.headers.set("x-bv-region", state.region.name);
        return response;
      }
      router.recordUnreachable(state.region.name, "a request could not connect");
      const next: RegionState | undefined = retryable && attempt === 0 ? pick(hint, state) : undefined;
      if (next === undefined) return response;
      counters.failovers++;
      state = next;
    }
  }

  const cachedReads = cache && createCachedReads({
    cache,
    now,
    forward: (request, region, trace) => forward(request, undefined, trace, byName.get(region)),
    staleAllowed: (region) => {
      const state = byName.get(region);
      return state?.follower === undefined || state.follower.connected;
    },
    track: (work) => {
      background.add(work);
      void work.finally(() => background.delete(work));
    },
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

  function limited(retryAfterSec: number, who: string): Response {
    counters.rateLimited++;
    return edgeProblem("COMMON.RATE_LIMITED", `Too many requests from this ${who}; retry in ${retryAfterSec} s`, {
      "retry-after": String(retryAfterSec),
    });
  }

  function openFlashSales(request: Request): Response {
    const lastEventId = request.headers.get("last-event-id");
    // A Last-Event-ID the edge issued names the region the client was on: resume there while it is healthy.
    const state = pickSticky(request, fanout!.resumeRegionOf(lastEventId));
    if (state === undefined) return noRegion();
    const response = fanout!.open(state.region.name, lastEventId, request.signal);
    response.headers.set("x-bv-region", state.region.name);
    return response;
  }

  const webSocketDeps: WebSocketRouteDeps = {
    connector: options.webSocket,
    pickSticky: (request, sticky) => pickSticky(request, sticky)?.region,
    pick: (hint, exclude) => pick(hint, byName.get(exclude.name))?.region,
    noRegion: () => noRegion(),
    counters,
  };

  function noRegion(): Response {
    counters.noRegion++;
    return edgeProblem("COMMON.UPSTREAM_UNAVAILABLE", "No region is healthy; try again shortly");
  }

  /**
   * Everything before the answer: limits, pre-auth, then the answer itself, or the cache read to serve
   * (kept apart so a cache hit builds its answer in one go, trace headers included). Synchronous unless a
   * step has to wait (a GraphQL body, a token to check, a region): Deno's server then takes the Response
   * without a round through the event loop, on every cache hit.
   */
  function route(rawRequest: Request, path: string, env: unknown, trace: EdgeTrace): Routed | Promise<Routed> {
    counters.requests++;
    const clientId = clientIdOf(rawRequest, env);
    if (clientLimiter !== undefined) {
      const waitSec = clientLimiter.take(clientId);
      if (waitSec > 0) return limited(waitSec, "client");
    }
    if (Number(rawRequest.headers.get("content-length") ?? "0") > EDGE_BODY_BYTES_MAX) {
      return edgeProblem("COMMON.PAYLOAD_TOO_LARGE", `Request bodies are limited to ${EDGE_BODY_BYTES_MAX} bytes`);
    }
    const request = withoutIdentityHeaders(rawRequest);
    if (request.method === "POST" && path === "/graphql") return routeGraphql(rawRequest, request, trace, clientId);
    // Pre-auth has nothing to do for a request that needs no token and cannot carry one.
    const mayCarryToken = request.headers.has("authorization") || queryTokenAllowed(path);
    if (preAuth !== undefined && (mayCarryToken || tokenRequired(request.method, path))) {
      return authenticated(rawRequest, request, path, trace, clientId, undefined);
    }
    return admitted(rawRequest, request, path, trace, clientId, undefined, undefined);
  }

  async function routeGraphql(
    rawRequest: Request,
    request: Request,
    trace: EdgeTrace,
    clientId: string,
  ): Promise<Routed> {
    const read = await readGraphqlRequest(request);
    if (read === "too-large") {
      return edgeProblem(
        "COMMON.PAYLOAD_TOO_LARGE",
        `GraphQL request bodies are limited to ${GRAPHQL_BODY_BYTES_MAX} bytes; send a smaller query or fewer variables`,
      );
    }
    const method = request.method;
    const body = new Request(request.url, {
      method,
      headers: request.headers,
      body: read.text,
      signal: request.signal,
    });
    if (preAuth === undefined) return await admitted(rawRequest, body, "/graphql", trace, clientId, undefined, read);
    return await authenticated(rawRequest, body, "/graphql", trace, clientId, read);
  }

  async function authenticated(
    rawRequest: Request,
    request: Request,
    path: string,
    trace: EdgeTrace,
    clientId: string,
    graphql: GraphqlRead | undefined,
  ): Promise<Routed> {
    const required = graphql === undefined ? tokenRequired(request.method, path) : graphql.kind !== "read";
    // Browsers' WebSocket and EventSource cannot send headers: there, a token may be the query's access_token.
    const result = await preAuth!.authenticate(request, required, queryTokenAllowed(path));
    if (result instanceof Response) {
      counters.authRejected++;
      return result;
    }
    return await admitted(rawRequest, request, path, trace, clientId, result, graphql);
  }

  /** The route of a request that passed the client limit and pre-auth. */
  function admitted(
    rawRequest: Request,
    request: Request,
    path: string,
    trace: EdgeTrace,
    clientId: string,
    principal: Principal | undefined,
    graphql: GraphqlRead | undefined,
  ): Routed | Promise<Routed> {
    if (principal !== undefined && subjectLimiter !== undefined) {
      const waitSec = subjectLimiter.take(principal.userId);
      if (waitSec > 0) return limited(waitSec, "user");
    }
    const method = request.method;
    if (method === "GET" && path === FLASH_SALES_PATH && fanout !== undefined) return openFlashSales(request);
    // The raw request: only the one the server handed us can be upgraded (identity headers are not forwarded).
    if (method === "GET" && rawRequest.headers.get("upgrade")?.toLowerCase() === "websocket") {
      const verifiedSub = principal?.userId;
      return openWebSocket(
        rawRequest,
        webSocketDeps,
        (region) => headersFor(byName.get(region.name)!, trace, verifiedSub),
      );
    }
    const region = regionFor(request, clientId, principal, graphql);
    if (region === undefined) return noRegion();
    const read = cachedReads && cacheableReadOf(request, path, graphql);
    // Public cached reads carry no cookie (it would keep shared caches from storing them); the pin still holds.
    if (read !== undefined) return { request, region: region.region.name, read };
    return forward(request, principal?.userId, trace, region).then((response) => withAffinityCookie(request, response));
  }

  /** The answer to a routed request, with the trace on it. */
  function answer(routed: Routed, trace: EdgeTrace): Response | Promise<Response> {
    if (routed instanceof Response) return withTraceHeaders(routed, trace);
    return cachedReads!.serve(routed.request, routed.region, routed.read, trace);
  }

  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "alive", service: "edge" }));
  app.get("/readyz", (c) => {
    const ready = router.health().some((s) => s.healthy);
    return c.json({ service: "edge", ready, regions: edge.health() }, ready ? 200 : 503);
  });
  app.get("/metrics", () => new Response(metricsText(), { headers: { "content-type": "text/plain; version=0.0.4" } }));
  app.all("*", (c): Response | Promise<Response> => {
    const trace = edgeTraceOf(c.req.raw.headers);
    const routed = route(c.req.raw, c.req.path, c.env, trace);
    return routed instanceof Promise ? routed.then((r) => answer(r, trace)) : answer(routed, trace);
  });

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

  const edge: Edge = {
    app,
    checkHealth: async () => {
      await Promise.all(states.map(probe));
    },
    start: async () => {
      startFollowers();
      fanout?.start();
      await edge.checkHealth();
      timer ??= setInterval(() => void edge.checkHealth(), options.healthIntervalMs ?? 2_000);
    },
    stop: async () => {
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
