/**
 * @module
 * The read-through flow of the hot-query cache: a fresh entry is served at once (304 when the client's
 * `If-None-Match` matches on a GET); a stale one is served while one background refresh runs, but only
 * while the region's invalidation stream is up (so a missed purge is bounded by the TTL alone); anything
 * else goes to a region, and a storable 200 is kept. Fills strip the client's conditional headers so the
 * region always answers with a body to store.
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

/** A request the cache may answer: its key (without the region) and what purges need to find it. */
export interface CacheableRead {
  readonly keyBase: string;
  /** Path and query, or `/graphql`. */
  readonly path: string;
  readonly productId: string | undefined;
  /** The already-read body of a GraphQL query, forwarded as is. */
  readonly bodyText?: string;
}

export interface CachedReadDeps {
  readonly cache: HotCache;
  readonly now: () => number;
  /** Sends a request to a region (with failover); the response names its region in `x-bv-region`. */
  readonly forward: (request: Request) => Promise<Response>;
  /** False while the region's invalidation stream is down: its stale entries are then not served. */
  readonly staleAllowed: (region: string) => boolean;
  /** Keeps track of a background refresh (so shutdown and tests can wait for it). */
  readonly track: (work: Promise<unknown>) => void;
  readonly counters: { hits: number; stale: number; misses: number; notModified: number };
}

export interface CachedReads {
  /** Answers `request` for `read`, with `region` being the one the request would be routed to. */
  serve(request: Request, region: string, read: CacheableRead): Promise<Response>;
}

/** Conditional request headers: a fill must get a full body, whatever the client holds. */
const CONDITIONAL = ["if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"];
/** Response headers set per response, never stored. */
const PER_RESPONSE = new Set(["age", "etag", "content-length", "x-bv-cache", "x-bv-region"]);

export function createCachedReads(deps: CachedReadDeps): CachedReads {
  const { cache, counters } = deps;

  function respond(entry: CachedResponse, request: Request, state: string, nowMs: number): Response {
    const headers = new Headers(entry.headers as [string, string][]);
    headers.set("etag", entry.etag);
    headers.set("age", String(Math.max(0, Math.floor((nowMs - entry.storedAtMs) / 1000))));
    headers.set("x-bv-cache", state);
    headers.set("x-bv-region", entry.region);
    // RFC 9110 section 13.1.2: If-None-Match answers 304 only for GET and HEAD.
    if (request.method === "GET" && ifNoneMatchHits(request.headers.get("if-none-match"), entry.etag)) {
      counters.notModified++;
      headers.delete("content-type");
      return new Response(null, { status: 304, headers });
    }
    return new Response(entry.body as Uint8Array<ArrayBuffer>, { status: entry.status, headers });
  }

  function fillRequest(request: Request, read: CacheableRead, signal: AbortSignal | undefined): Request {
    const headers = new Headers(request.headers);
    for (const name of CONDITIONAL) headers.delete(name);
    return new Request(request.url, { method: request.method, headers, body: read.bodyText, signal });
  }

  /** Fetches, stores when allowed, and answers with what was fetched. */
  async function fill(
    request: Request,
    read: CacheableRead,
    signal: AbortSignal | undefined,
  ): Promise<{ response: Response; stored: CachedResponse | undefined }> {
    const generation = cache.generation();
    const response = await deps.forward(fillRequest(request, read, signal));
    const freshness = response.status === 200 && response.body !== null
      ? freshnessOf(response.headers, request.headers.has("authorization"), cache.options)
      : undefined;
    if (freshness === undefined) {
      response.headers.set("x-bv-cache", "BYPASS");
      return { response, stored: undefined };
    }
    const body = await readBounded(response.body!, cache.options.entryBytesMax);
    if ("stream" in body) {
      response.headers.set("x-bv-cache", "BYPASS");
      return { response: new Response(body.stream, { status: 200, headers: response.headers }), stored: undefined };
    }
    // A GraphQL answer with errors (a masked failure, a missing product) is not worth keeping for a TTL.
    if (read.bodyText !== undefined && new TextDecoder().decode(body.bytes).includes('"errors"')) {
      response.headers.set("x-bv-cache", "BYPASS");
      return {
        response: new Response(body.bytes as Uint8Array<ArrayBuffer>, { status: 200, headers: response.headers }),
        stored: undefined,
      };
    }
    const region = response.headers.get("x-bv-region") ?? "";
    const key = `${region} ${read.keyBase}`;
    const headers: [string, string][] = [];
    for (const [name, value] of response.headers) if (!PER_RESPONSE.has(name)) headers.push([name, value]);
    const nowMs = deps.now();
    const entry: CachedResponse = {
      key,
      region,
      path: read.path,
      productId: read.productId,
      status: 200,
      headers,
      body: body.bytes,
      etag: await etagOf(body.bytes),
      storedAtMs: nowMs,
      freshUntilMs: nowMs + freshness.freshMs,
      staleUntilMs: nowMs + freshness.freshMs + freshness.staleMs,
      bytes: entryBytesOf(key, headers, body.bytes),
      refreshing: false,
    };
    cache.store(entry, generation);
    return { response: respond(entry, request, "MISS", nowMs), stored: entry };
  }

  function refreshInBackground(entry: CachedResponse, request: Request, read: CacheableRead): void {
    entry.refreshing = true;
    const work = fill(request, read, undefined)
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
    async serve(request, region, read) {
      const entry = cache.lookup(`${region} ${read.keyBase}`);
      const nowMs = deps.now();
      if (entry !== undefined) {
        if (nowMs < entry.freshUntilMs) {
          counters.hits++;
          return respond(entry, request, "HIT", nowMs);
        }
        if (nowMs < entry.staleUntilMs && deps.staleAllowed(entry.region)) {
          counters.stale++;
          if (!entry.refreshing) refreshInBackground(entry, request, read);
          return respond(entry, request, "STALE", nowMs);
        }
      }
      counters.misses++;
      return (await fill(request, read, request.signal)).response;
    },
  };
}
