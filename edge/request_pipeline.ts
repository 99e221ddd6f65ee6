/**
 * @module
 * The edge's request pipeline, in this order: a per-client rate limit; the method and path checks; the body
 * bound; JWT pre-auth (mutations and private reads need a token, any token present must be valid); a
 * per-subject rate limit; then the flash-sale fan-out, a WebSocket proxied to its sticky region, the hot-query
 * cache for public reads, or the proxy (`http_route.ts`). Nothing reaches a region before these have passed.
 * The regions' invalidation feed is refused here: it is the edges' own, followed at the ingress directly.
 */
import type { Principal } from "../shared/auth/verifier.ts";
import { UNREAD_BODY_HEADERS } from "../shared/http/request_body.ts";
import { type CacheableRead, cacheableReadOf, type CachedReads } from "./cached_read.ts";
import type { WebSocketConnector } from "./edge_options.ts";
import { edgeProblem } from "./edge_problem.ts";
import { FLASH_SALES_PATH, type FlashSaleFanout } from "./flash_sale_fanout.ts";
import { GRAPHQL_BODY_BYTES_MAX, type GraphqlRead, readGraphqlRequest } from "./graphql_read.ts";
import type { HttpRoute } from "./http_route.ts";
import { INVALIDATIONS_PATH } from "./invalidation_stream.ts";
import type { PreAuth } from "./pre_auth.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import { queryTokenAllowed, tokenIgnored, tokenRequired } from "./route_policy.ts";
import { type EdgeTrace, withTraceHeaders } from "./trace.ts";
import { type EdgeClient, withoutIdentityHeaders } from "./client_request.ts";
import { openWebSocket, type WebSocketRouteDeps } from "./websocket_route.ts";

/** Whole requests the edge lets through to a region; bigger ones are refused here (regions bound them too). */
export const EDGE_BODY_BYTES_MAX = 1024 * 1024;

/**
 * The methods the edge routes, exactly as spelled (RFC 9110 section 9.1: methods are case-sensitive). Anything
 * else is 501 before any rule runs, since the rules and the region would see two different methods: the rules
 * compare `request.method` as sent (`post` is not a mutation to `tokenRequired`, so it skipped pre-auth), while
 * fetch upper-cases `delete|get|head|options|post|put` on the way to the region, which took `post` as POST;
 * fetch also refuses TRACE and CONNECT, and `get` (the server gives it a body stream, which a GET may not
 * carry), which read as "region unreachable" and took the region out. 501, not 405: 405 says the method is
 * known and needs an `Allow` of what the target resource supports, which the edge cannot know; 501 is RFC
 * 9110's answer to a method the server does not recognise.
 * Not normalised to upper case either: `post` is another method, not a misspelt POST, and guessing for the
 * client would hide a broken client behind an answer it did not ask for.
 */
const EDGE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** A public read the hot cache answers (it sets the trace headers itself: see `cached_read.ts`). */
interface CacheRoute {
  readonly request: Request;
  readonly region: string;
  readonly read: CacheableRead;
  readonly clientAddress: string | undefined;
}

/** Where a request goes: an answer already made (trace headers still to set), or a cache read. */
type Routed = Response | CacheRoute;

export interface RequestPipelineDeps {
  readonly http: HttpRoute;
  /** Who sent the request: its rate-limit id and its address (for `X-Forwarded-For`). */
  readonly clientOf: (request: Request, env: unknown) => EdgeClient;
  readonly clientLimiter: RateLimiter | undefined;
  readonly subjectLimiter: RateLimiter | undefined;
  readonly preAuth: PreAuth | undefined;
  readonly fanout: FlashSaleFanout | undefined;
  readonly cachedReads: CachedReads | undefined;
  readonly webSocket: WebSocketConnector | undefined;
  readonly counters: {
    requests: number;
    authRejected: number;
    rateLimited: number;
    webSockets: number;
    failovers: number;
  };
}

/**
 * The answer to `rawRequest` (path `path`, server `env`), with the trace on it. Synchronous unless a step
 * has to wait (a GraphQL body, a token to check, a region): Deno's server then takes the Response without
 * a round through the event loop, on every cache hit.
 */
export type EdgeHandler = (rawRequest: Request, path: string, env: unknown, trace: EdgeTrace) =>
  | Response
  | Promise<Response>;

export function createRequestPipeline(deps: RequestPipelineDeps): EdgeHandler {
  const { http, counters, preAuth, fanout, cachedReads } = deps;

  function limited(retryAfterSec: number, who: string): Response {
    counters.rateLimited++;
    return edgeProblem("COMMON.RATE_LIMITED", `Too many requests from this ${who}; retry in ${retryAfterSec} s`, {
      "retry-after": String(retryAfterSec),
    });
  }

  function openFlashSales(request: Request, client: EdgeClient): Response {
    const lastEventId = request.headers.get("last-event-id");
    // A Last-Event-ID the edge issued names the region the client was on: resume there while it is healthy.
    const state = http.pickSticky(request, fanout!.resumeRegionOf(lastEventId));
    if (state === undefined) return http.noRegion();
    const response = fanout!.open(state.region.name, lastEventId, request.signal, client.id);
    response.headers.set("x-bv-region", state.region.name);
    return response;
  }

  const webSocketDeps: WebSocketRouteDeps = {
    connector: deps.webSocket,
    pickSticky: (request, sticky) => http.pickSticky(request, sticky)?.region,
    pick: (hint, exclude) => http.pick(hint, http.byName.get(exclude.name))?.region,
    noRegion: () => http.noRegion(),
    counters,
  };

  /** Everything before the answer: limits, pre-auth, then the answer itself, or the cache read to serve. */
  function route(rawRequest: Request, path: string, env: unknown, trace: EdgeTrace): Routed | Promise<Routed> {
    counters.requests++;
    const client = deps.clientOf(rawRequest, env);
    if (deps.clientLimiter !== undefined) {
      const waitSec = deps.clientLimiter.take(client.id);
      if (waitSec > 0) return limited(waitSec, "client");
    }
    if (!EDGE_METHODS.has(rawRequest.method)) {
      return edgeProblem(
        "COMMON.METHOD_NOT_IMPLEMENTED",
        `The edge does not implement method "${rawRequest.method}"; methods are case-sensitive: send one of ${
          [...EDGE_METHODS].join(", ")
        }`,
      );
    }
    // One spelling per path: the rules below match `path`, while the proxy and fetch resolve dot segments
    // and read `\` as `/`, so `/api/v1/products/../ecommerce/invalidations` passed as a product read and
    // reached the refused feed, and `//host/…` named another host.
    if (isAmbiguousPath(path) || isAmbiguousPath(rawPathOf(rawRequest.url))) {
      return edgeProblem(
        "COMMON.VALIDATION_FAILED",
        "Paths may not hold empty, '.' or '..' segments or backslashes; send the path as it is meant",
      );
    }
    // The edges' own feed (a plain prefix, so near-misses are refused too): an anonymous client holding
    // the region's streams would lock the edges' followers out. They connect to the ingress directly.
    if (path.startsWith(INVALIDATIONS_PATH)) return edgeProblem("COMMON.NOT_FOUND", `No route for ${path}`);
    if (Number(rawRequest.headers.get("content-length") ?? "0") > EDGE_BODY_BYTES_MAX) {
      return edgeProblem("COMMON.PAYLOAD_TOO_LARGE", `Request bodies are limited to ${EDGE_BODY_BYTES_MAX} bytes`);
    }
    const request = withoutIdentityHeaders(rawRequest);
    if (request.method === "POST" && path === "/graphql") return routeGraphql(rawRequest, request, trace, client);
    // Pre-auth has nothing to do for a request that needs no token and cannot carry one.
    const mayCarryToken = !tokenIgnored(request.method, path) &&
      (request.headers.has("authorization") || queryTokenAllowed(path));
    if (preAuth !== undefined && (mayCarryToken || tokenRequired(request.method, path))) {
      return authenticated(rawRequest, request, path, trace, client, undefined);
    }
    return admitted(rawRequest, request, path, trace, client, undefined, undefined);
  }

  async function routeGraphql(
    rawRequest: Request,
    request: Request,
    trace: EdgeTrace,
    client: EdgeClient,
  ): Promise<Routed> {
    const read = await readGraphqlRequest(request);
    // The body was not read to its end: the rest must not be taken for the connection's next request.
    if (read === "too-large") {
      return edgeProblem(
        "COMMON.PAYLOAD_TOO_LARGE",
        `GraphQL request bodies are limited to ${GRAPHQL_BODY_BYTES_MAX} bytes; send a smaller query or fewer variables`,
        UNREAD_BODY_HEADERS,
      );
    }
    // The proxies' answers to the same failures (`shared/http/proxy.ts`); most likely nobody reads them.
    if (read === "timeout") {
      return edgeProblem(
        "COMMON.REQUEST_TIMEOUT",
        "No part of the request body arrived for too long; send the whole body without pausing",
        UNREAD_BODY_HEADERS,
      );
    }
    if (read === "incomplete") {
      return edgeProblem(
        "COMMON.REQUEST_INCOMPLETE",
        "The request body could not be read to its end (the client stopped sending); send the whole body",
      );
    }
    const method = request.method;
    const body = new Request(request.url, {
      method,
      headers: request.headers,
      body: read.text,
      signal: request.signal,
    });
    if (preAuth === undefined) return await admitted(rawRequest, body, "/graphql", trace, client, undefined, read);
    return await authenticated(rawRequest, body, "/graphql", trace, client, read);
  }

  async function authenticated(
    rawRequest: Request,
    request: Request,
    path: string,
    trace: EdgeTrace,
    client: EdgeClient,
    graphql: GraphqlRead | undefined,
  ): Promise<Routed> {
    const required = graphql === undefined ? tokenRequired(request.method, path) : graphql.kind !== "read";
    // Browsers' WebSocket and EventSource cannot send headers: there, a token may be the query's access_token.
    const result = await preAuth!.authenticate(request, required, queryTokenAllowed(path));
    if (result instanceof Response) {
      counters.authRejected++;
      return result;
    }
    return await admitted(rawRequest, request, path, trace, client, result, graphql);
  }

  /** The route of a request that passed the client limit and pre-auth. */
  function admitted(
    rawRequest: Request,
    request: Request,
    path: string,
    trace: EdgeTrace,
    client: EdgeClient,
    principal: Principal | undefined,
    graphql: GraphqlRead | undefined,
  ): Routed | Promise<Routed> {
    if (principal !== undefined && deps.subjectLimiter !== undefined) {
      const waitSec = deps.subjectLimiter.take(principal.userId);
      if (waitSec > 0) return limited(waitSec, "user");
    }
    const method = request.method;
    if (method === "GET" && path === FLASH_SALES_PATH && fanout !== undefined) return openFlashSales(request, client);
    // The raw request: only the one the server handed us can be upgraded (identity headers are not forwarded).
    if (method === "GET" && rawRequest.headers.get("upgrade")?.toLowerCase() === "websocket") {
      const verifiedSub = principal?.userId;
      return openWebSocket(
        rawRequest,
        webSocketDeps,
        (region) => http.headersFor(http.byName.get(region.name)!, trace, verifiedSub),
        client.address,
      );
    }
    const region = http.regionFor(request, client.id, principal, graphql);
    if (region === undefined) return http.noRegion();
    const read = cachedReads && cacheableReadOf(request, path, graphql);
    // Public cached reads carry no cookie (it would keep shared caches from storing them); the pin still holds.
    if (read !== undefined) return { request, region: region.region.name, read, clientAddress: client.address };
    const forwarded = http.forward(request, {
      verifiedSub: principal?.userId,
      trace,
      first: region,
      clientAddress: client.address,
    });
    return forwarded.then((response) => http.withAffinityCookie(request, response));
  }

  /** The answer to a routed request, with the trace on it. */
  function answer(routed: Routed, trace: EdgeTrace): Response | Promise<Response> {
    if (routed instanceof Response) return withTraceHeaders(routed, trace);
    return cachedReads!.serve(routed.request, routed.region, routed.read, trace, routed.clientAddress);
  }

  return (rawRequest, path, env, trace) => {
    const routed = route(rawRequest, path, env, trace);
    return routed instanceof Promise ? routed.then((r) => answer(r, trace)) : answer(routed, trace);
  };
}

/** The raw path of an absolute request URL, as the client sent it (before any decoding). */
function rawPathOf(url: string): string {
  const slash = url.indexOf("/", url.indexOf("//") + 2);
  if (slash === -1) return "/";
  const query = url.indexOf("?", slash);
  return query === -1 ? url.slice(slash) : url.slice(slash, query);
}

/** True for a path with `//`, a backslash, or a `.`/`..` segment (literal or percent-encoded). */
export function isAmbiguousPath(path: string): boolean {
  if (path.includes("//") || path.includes("\\") || /%5c/i.test(path)) return true;
  return path.split("/").some((segment) => {
    const plain = segment.replace(/%2e/gi, ".");
    return plain === "." || plain === "..";
  });
}
