/**
 * @module
 * Where an HTTP request goes and how it gets there: the region per request (a healthy hint for that request
 * alone, else the client's pin from `region_affinity.ts`), the `bv-region` cookie that tells a browser its
 * region, and the proxy step with its one failover: an idempotent request without a body whose region
 * cannot be reached is sent once more to the router's next choice (a POST is never replayed). The client's address is
 * appended to `X-Forwarded-For`, as the ingress does; a proxied event stream ends when the edge stops.
 */
import type { Principal } from "../shared/auth/verifier.ts";
import { endingOnAbort } from "../shared/http/event_stream_end.ts";
import { PROXY_ERROR_HEADER, proxyRequest } from "../shared/http/proxy.ts";
import { cookieOf, STICKY_COOKIE } from "./client_request.ts";
import type { EdgeRegion } from "./edge_options.ts";
import { edgeProblem } from "./edge_problem.ts";
import type { GraphqlRead } from "./graphql_read.ts";
import type { InvalidationFollower } from "./invalidation_stream.ts";
import type { RegionAffinity } from "./region_affinity.ts";
import type { RegionRouter } from "./region_router.ts";
import { type EdgeTrace, edgeTraceOf } from "./trace.ts";

/** A region as the edge holds it. */
export interface RegionState {
  readonly region: EdgeRegion;
  /** The headers the edge adds when forwarding to this region, built once. */
  readonly forwardHeaders: Readonly<Record<string, string>>;
  follower?: InvalidationFollower;
}

export interface HttpRouteDeps {
  readonly states: readonly RegionState[];
  readonly router: RegionRouter;
  readonly affinity: RegionAffinity;
  /** The affinity's TTL: the HTTP cookie lasts as long as an idle pin. */
  readonly affinityTtlMs: number;
  readonly fetch: typeof fetch;
  /** Bound on waiting for a region's response headers. */
  readonly upstreamTimeoutMs: number;
  readonly counters: { stickyHonoured: number; noRegion: number; failovers: number };
  /**
   * Aborted when the edge stops: a proxied event stream (`/sse/orders/{id}`, a per-client `/sse/flash-sales`)
   * ends on it with a last comment, or the server's drain would wait on it until the grace ran out.
   */
  readonly stopping: () => AbortSignal;
}

/** How `forward` sends a request. */
export interface ForwardOptions {
  /** The verified token subject, passed on for logging only. */
  readonly verifiedSub?: string;
  /** @default the trace continued from the request's headers */
  readonly trace?: EdgeTrace;
  /** The region to try first. @default the router's choice for the request's hint */
  readonly first?: RegionState;
  /** The client's address, appended to `X-Forwarded-For` (or starting it). */
  readonly clientAddress?: string;
}

export interface HttpRoute {
  readonly byName: ReadonlyMap<string, RegionState>;
  /** The region the router chooses for `hint`; `exclude` skips one already tried. */
  pick(hint: string | null | undefined, exclude?: RegionState): RegionState | undefined;
  /** The sticky region when it is healthy, else the router's choice for the request's hint. */
  pickSticky(request: Request, sticky: string | undefined): RegionState | undefined;
  /** A healthy hinted region for this request alone, else the client's pinned region (pinned from now on). */
  regionFor(
    request: Request,
    clientId: string,
    principal: Principal | undefined,
    graphql: GraphqlRead | undefined,
  ): RegionState | undefined;
  /** Tells a browser its region when its cookie says otherwise (rarely: a cookie defeats shared caches). */
  withAffinityCookie(request: Request, response: Response): Response;
  /** The headers the edge adds for `state`: trace, and the verified subject (for logging only). */
  headersFor(state: RegionState, trace: EdgeTrace, verifiedSub?: string): Record<string, string>;
  /**
   * Sends `request` to `options.first` (else the router's choice), once more to the next one when it is safe and
   * the first is unreachable.
   */
  forward(request: Request, options?: ForwardOptions): Promise<Response>;
  /** 503: no region is healthy. */
  noRegion(): Response;
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
const READS = new Set(["GET", "HEAD", "OPTIONS"]);
const VERIFIED_SUB = "x-bv-verified-sub";

export function createHttpRoute(deps: HttpRouteDeps): HttpRoute {
  const { router, affinity, counters } = deps;
  const byName = new Map(deps.states.map((state) => [state.region.name, state]));
  // The HTTP twin of the WebSocket cookie, for the whole site; it lasts as long as an idle pin.
  const affinityCookieSuffix = `; Path=/; Max-Age=${Math.ceil(deps.affinityTtlMs / 1000)}; HttpOnly; SameSite=Lax`;

  function pick(hint: string | null | undefined, exclude?: RegionState): RegionState | undefined {
    const name = router.choose(hint, exclude?.region.name);
    return name === undefined ? undefined : byName.get(name);
  }

  function noRegion(): Response {
    counters.noRegion++;
    return edgeProblem("COMMON.UPSTREAM_UNAVAILABLE", "No region is healthy; try again shortly");
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

  async function forward(request: Request, options: ForwardOptions = {}): Promise<Response> {
    const { verifiedSub, clientAddress } = options;
    const trace = options.trace ?? edgeTraceOf(request.headers);
    const hint = request.headers.get("x-bv-region");
    let state: RegionState | undefined = options.first ?? pick(hint);
    if (state === undefined) return noRegion();
    // Only requests without a body and with idempotent semantics can be sent twice safely.
    const retryable = IDEMPOTENT.has(request.method) && request.body === null;
    for (let attempt = 0;; attempt++) {
      const response: Response = await proxyRequest(request, {
        upstream: state.region.url,
        headersTimeoutMs: deps.upstreamTimeoutMs,
        fetch: deps.fetch,
        setHeaders: headersFor(state, trace, verifiedSub),
        clientAddress,
      });
      if (response.headers.get(PROXY_ERROR_HEADER) !== "unreachable") {
        response.headers.set("x-bv-region", state.region.name);
        return endingOnAbort(response, deps.stopping());
      }
      router.recordUnreachable(state.region.name, "a request could not connect");
      const next: RegionState | undefined = retryable && attempt === 0 ? pick(hint, state) : undefined;
      if (next === undefined) return response;
      counters.failovers++;
      state = next;
    }
  }

  return {
    byName,
    pick,
    pickSticky(request, sticky) {
      const state = sticky === undefined ? undefined : byName.get(sticky);
      if (state !== undefined && router.isHealthy(sticky!)) {
        counters.stickyHonoured++;
        return state;
      }
      return pick(request.headers.get("x-bv-region"));
    },
    regionFor(request, clientId, principal, graphql) {
      const hint = request.headers.get("x-bv-region");
      if (hint !== null && byName.has(hint) && router.isHealthy(hint)) return pick(hint);
      const name = affinity.regionFor({
        subject: principal?.userId,
        address: clientId,
        cookie: cookieOf(request, STICKY_COOKIE),
        write: graphql === undefined ? !READS.has(request.method) : graphql.kind !== "read",
      });
      return name === undefined ? undefined : byName.get(name);
    },
    withAffinityCookie(request, response) {
      const region = response.headers.get("x-bv-region");
      if (region !== null && cookieOf(request, STICKY_COOKIE) !== region && !request.headers.has("x-bv-region")) {
        response.headers.append("set-cookie", `${STICKY_COOKIE}=${region}${affinityCookieSuffix}`);
      }
      return response;
    },
    headersFor,
    forward,
    noRegion,
  };
}
