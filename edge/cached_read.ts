/**
 * @module
 * The read-through flow of the hot-query cache: a fresh entry is served at once (304 when the client's
 * `If-None-Match` matches on a GET); a stale one is served while one background refresh runs, but only
 * while the region's invalidation stream is up (so a missed purge is bounded by the TTL alone); anything
 * else goes to a region, and a storable 200 is kept. Fills strip the client's conditional headers so the
 * region always answers with a body to store. An entry's ETag is the region's own when it sent one (a product's
 * `"v7"`, which its writes compare `If-Match` with), else a hash of the body.
 *
 * A hit is the hot path (issue 5 asks for 10,000 req/s): its answer is built in one `new Response` from a
 * header list prepared at fill time, trace headers included, and its headers are never touched afterwards
 * (reading `response.headers` makes Deno drop the native header copy it prepared for its server).
 */
import {
  type CachedResponse,
  entryBytesOf,
  etagOf,
  freshnessOf,
  type HotCache,
  ifNoneMatchHits,
  readBounded,
} from "./hot_cache.ts";
import { edgeProblem } from "./edge_problem.ts";
import type { GraphqlRead } from "./graphql_read.ts";
import { isCacheableGet, productIdOfPath } from "./route_policy.ts";
import { type EdgeTrace, withTraceHeaders } from "./trace.ts";

/** A request the cache may answer: its key (without the region) and what purges need to find it. */
export interface CacheableRead {
  readonly keyBase: string;
  /** Path and query, or `/graphql`. */
  readonly path: string;
  /** The REST path whose product a purge may name (undefined for GraphQL); parsed only when a fill stores. */
  readonly productPath: string | undefined;
  /** The already-read body of a GraphQL query, forwarded as is. */
  readonly bodyText?: string;
}

export interface CachedReadDeps {
  readonly cache: HotCache;
  readonly now: () => number;
  /**
   * Sends a request to `region` (with failover); the response names the region that answered in `x-bv-region`.
   * The fill goes to the region the read was routed to (the client's pinned one), not a fresh choice.
   */
  readonly forward: (
    request: Request,
    region: string,
    trace: EdgeTrace,
    clientAddress: string | undefined,
  ) => Promise<Response>;
  /** False while the region's invalidation stream is down: its stale entries are then not served. */
  readonly staleAllowed: (region: string) => boolean;
  /** Keeps track of a background refresh (so shutdown and tests can wait for it). */
  readonly track: (work: Promise<unknown>) => void;
  /** Bound on reading a fill's body once its headers came (a region that stalls mid-body). */
  readonly bodyTimeoutMs: number;
  readonly counters: { hits: number; stale: number; misses: number; notModified: number };
}

export interface CachedReads {
  /**
   * Answers `request` for `read`, with `region` being the one the request would be routed to; the answer
   * carries `trace` (callers must not set it again: see the module doc). A fill (or the refresh the request
   * starts) carries `clientAddress` in `X-Forwarded-For`, as a proxied request does.
   */
  serve(
    request: Request,
    region: string,
    read: CacheableRead,
    trace: EdgeTrace,
    clientAddress?: string,
  ): Response | Promise<Response>;
}

/** Conditional request headers: a fill must get a full body, whatever the client holds. */
const CONDITIONAL = ["if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"];
/** An entity tag as RFC 9110 section 8.8.3 spells it; a region's ETag that is not one gives way to the body's hash. */
const ENTITY_TAG = /^(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"$/;

/** Response headers set per answer (or added once per entry: etag, region), never stored as the region sent them. */
const PER_RESPONSE = new Set([
  "age",
  "etag",
  "content-length",
  "x-bv-cache",
  "x-bv-region",
  "traceparent",
  "correlation-id",
]);

export function createCachedReads(deps: CachedReadDeps): CachedReads {
  const { cache, counters } = deps;

  function respond(entry: CachedResponse, request: Request, state: string, nowMs: number, trace: EdgeTrace): Response {
    // The stored list already holds the entry's ETag and region; only what varies per answer is added.
    const headers: [string, string][] = [
      ...entry.headers as [string, string][],
      ["age", String(Math.max(0, Math.floor((nowMs - entry.storedAtMs) / 1000)))],
      ["x-bv-cache", state],
      ["traceparent", trace.traceparent],
      ["correlation-id", trace.correlationId],
    ];
    // RFC 9110 section 13.1.2: If-None-Match answers 304 only for GET and HEAD.
    if (request.method === "GET" && ifNoneMatchHits(request.headers.get("if-none-match"), entry.etag)) {
      counters.notModified++;
      return new Response(null, { status: 304, headers: headers.filter(([name]) => name !== "content-type") });
    }
    return new Response(entry.body as Uint8Array<ArrayBuffer>, { status: entry.status, headers });
  }

  function withoutCredentials(request: Request): Request {
    const headers = new Headers(request.headers);
    headers.delete("authorization");
    headers.delete("cookie");
    return new Request(request.url, { method: request.method, headers });
  }

  function fillRequest(request: Request, read: CacheableRead, signal: AbortSignal | undefined): Request {
    const headers = new Headers(request.headers);
    for (const name of CONDITIONAL) headers.delete(name);
    return new Request(request.url, { method: request.method, headers, body: read.bodyText, signal });
  }

  /** Fetches, stores when allowed, and answers with what was fetched. */
  async function fill(
    request: Request,
    region: string,
    read: CacheableRead,
    signal: AbortSignal | undefined,
    trace: EdgeTrace,
    clientAddress: string | undefined,
  ): Promise<{ response: Response; stored: CachedResponse | undefined }> {
    const generation = cache.generation();
    const response = await deps.forward(fillRequest(request, read, signal), region, trace, clientAddress);
    const bypass = (answer: Response) => {
      answer.headers.set("x-bv-cache", "BYPASS");
      return { response: withTraceHeaders(answer, trace), stored: undefined };
    };
    const freshness = response.status === 200 && response.body !== null
      ? freshnessOf(response.headers, request.headers.has("authorization"), cache.options)
      : undefined;
    if (freshness === undefined) return bypass(response);
    let body: Awaited<ReturnType<typeof readBounded>>;
    try {
      body = await readBounded(response.body!, cache.options.entryBytesMax, deps.bodyTimeoutMs);
    } catch (error) {
      return bypass(bodyFailure(error));
    }
    if ("stream" in body) return bypass(new Response(body.stream, { status: 200, headers: response.headers }));
    // A GraphQL answer with errors (a masked failure, a missing product) is not worth keeping for a TTL.
    if (read.bodyText !== undefined && new TextDecoder().decode(body.bytes).includes('"errors"')) {
      return bypass(new Response(body.bytes as Uint8Array<ArrayBuffer>, { status: 200, headers: response.headers }));
    }
    const answered = response.headers.get("x-bv-region") ?? "";
    const key = `${answered} ${read.keyBase}`;
    // The region's validator is kept, not replaced by the hash: the catalog compares a write's If-Match with the
    // ETag of its reads, so a client that read through this cache must get that one to send back.
    const regionEtag = response.headers.get("etag");
    const etag = regionEtag !== null && ENTITY_TAG.test(regionEtag) ? regionEtag : await etagOf(body.bytes);
    const headers: [string, string][] = [];
    for (const [name, value] of response.headers) if (!PER_RESPONSE.has(name)) headers.push([name, value]);
    headers.push(["etag", etag], ["x-bv-region", answered]);
    const nowMs = deps.now();
    const entry: CachedResponse = {
      key,
      region: answered,
      path: read.path,
      productId: read.productPath === undefined ? undefined : productIdOfPath(read.productPath),
      status: 200,
      headers,
      body: body.bytes,
      etag,
      storedAtMs: nowMs,
      freshUntilMs: nowMs + freshness.freshMs,
      staleUntilMs: nowMs + freshness.freshMs + freshness.staleMs,
      bytes: entryBytesOf(key, headers, body.bytes),
      refreshing: false,
    };
    cache.store(entry, generation);
    return { response: respond(entry, request, "MISS", nowMs, trace), stored: entry };
  }

  function refreshInBackground(
    entry: CachedResponse,
    request: Request,
    read: CacheableRead,
    trace: EdgeTrace,
    clientAddress: string | undefined,
  ): void {
    entry.refreshing = true;
    // Refreshed as the anonymous read that stored it: a signed-in reader's credentials would make the answer
    // uncacheable for this request and read as "no longer cacheable", deleting the shared copy.
    const work = fill(withoutCredentials(request), entry.region, read, undefined, trace, clientAddress)
      .then(async ({ response, stored }) => {
        await response.body?.cancel();
        // The region no longer serves this read as cacheable (gone, private now): stop serving the old copy.
        if (stored === undefined) cache.purge([entry.key]);
      })
      .catch(() => {})
      .finally(() => {
        entry.refreshing = false;
      });
    deps.track(work);
  }

  return {
    // Not async: a hit is answered synchronously (see the module doc).
    serve(request, region, read, trace, clientAddress) {
      const entry = cache.lookup(`${region} ${read.keyBase}`);
      const nowMs = deps.now();
      if (entry !== undefined) {
        if (nowMs < entry.freshUntilMs) {
          counters.hits++;
          return respond(entry, request, "HIT", nowMs, trace);
        }
        if (nowMs < entry.staleUntilMs && deps.staleAllowed(entry.region)) {
          counters.stale++;
          if (!entry.refreshing) refreshInBackground(entry, request, read, trace, clientAddress);
          return respond(entry, request, "STALE", nowMs, trace);
        }
      }
      counters.misses++;
      return fill(request, region, read, request.signal, trace, clientAddress).then((filled) => filled.response);
    },
  };
}

/**
 * The answer when a fill's body failed after the region's headers came: 504 when it stalled past the bound, else
 * 502 (the region reset or closed the connection mid-body; a client that left and so aborted the fill gets it
 * too, unread). Headers were not sent yet, so this can still be a problem answer rather than a cut connection.
 */
function bodyFailure(error: unknown): Response {
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return edgeProblem("COMMON.UPSTREAM_TIMEOUT", `The region's answer stalled: ${error.message}`);
  }
  return edgeProblem(
    "COMMON.UPSTREAM_INCOMPLETE",
    "The region's answer broke off before its end; retry the request",
  );
}

/** The cache's view of a request, or undefined when it is not a hot public read. */
export function cacheableReadOf(
  request: Request,
  path: string,
  graphql: GraphqlRead | undefined,
): CacheableRead | undefined {
  if (graphql !== undefined) {
    if (graphql.kind !== "read" || graphql.keyBase === undefined) return undefined;
    return { keyBase: graphql.keyBase, path, productPath: undefined, bodyText: graphql.text };
  }
  if (!isCacheableGet(request.method, path)) return undefined;
  // The query is part of the key; hono's path has none, so take it from the URL only for cacheable reads.
  const url = request.url;
  const queryStart = url.indexOf("?");
  const pathAndQuery = queryStart < 0 ? path : path + url.slice(queryStart);
  if (pathAndQuery.length > 2048) return undefined;
  return { keyBase: `GET ${pathAndQuery}`, path: pathAndQuery, productPath: path };
}
