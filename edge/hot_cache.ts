/**
 * @module
 * The edge's store of hot public reads: whole 200 responses (status, headers, body bytes) with a strong
 * ETag computed from the body (SHA-256, Web Crypto), a fresh-until and a stale-until time. Bounded by entry
 * count and by bytes, least recently used first. Purges bump a generation counter and are remembered, so a
 * response fetched before a purge that would have removed it is never stored after it. Pure data structure: the request flow is in `cached_read.ts`.
 */

export interface HotCacheOptions {
  /** Longest time an entry is served without asking the region. */
  readonly ttlMs: number;
  /** After `ttlMs`, how long a stale entry may be served while one background refresh runs. */
  readonly staleWhileRevalidateMs: number;
  /** Entries kept at once. */
  readonly entriesMax: number;
  /** Body and header bytes kept at once. */
  readonly bytesMax: number;
  /** Largest single entry; bigger responses stream through uncached. @default min(1 MiB, bytesMax / 8) */
  readonly entryBytesMax?: number;
}

/** What a purge predicate sees of an entry. */
export interface CacheEntryInfo {
  readonly key: string;
  /** The region that produced the response. */
  readonly region: string;
  /** The request path and query (`/api/v1/products/42`), or `/graphql` for GraphQL queries. */
  readonly path: string;
  /** The product the response is about, when the path names one; undefined for listings and GraphQL. */
  readonly productId: string | undefined;
}

export interface CachedResponse extends CacheEntryInfo {
  readonly status: number;
  /** Response headers as stored (without per-response ones such as `age`). */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Uint8Array;
  readonly etag: string;
  readonly storedAtMs: number;
  readonly freshUntilMs: number;
  readonly staleUntilMs: number;
  readonly bytes: number;
  /** True while a background refresh of this entry runs (at most one at a time). */
  refreshing: boolean;
}

export type PurgeTarget = readonly string[] | ((entry: CacheEntryInfo) => boolean);

export interface HotCache {
  readonly options: Readonly<Required<HotCacheOptions>>;
  /** The entry for `key`, marked most recently used; expiry is the caller's decision. */
  lookup(key: string): CachedResponse | undefined;
  /**
   * Stores `entry` unless a purge since `generation` was read would have removed it (the response may predate
   * the change that purge announced), or it is too big. Purges of other keys or products do not matter.
   */
  store(entry: CachedResponse, generation: number): boolean;
  /** Drops the listed keys or every entry the predicate selects; returns how many went. */
  purge(target: PurgeTarget): number;
  /** Bumped by every purge; read it before fetching what you will store. */
  generation(): number;
  stats(): { entries: number; bytes: number };
}

/** Purges remembered for fills in flight: at ~200 purges/s (one per order) this covers the 5 s fill bound. */
const PURGE_LOG_MAX = 1_000;

/** Fixed cost counted per entry on top of its body and headers (key, times, bookkeeping). */
const ENTRY_OVERHEAD_BYTES = 256;

/** Creates a cache; options are checked here so a bad configuration fails at start. */
export function createHotCache(options: HotCacheOptions): HotCache {
  for (const name of ["ttlMs", "staleWhileRevalidateMs", "entriesMax", "bytesMax"] as const) {
    const value = options[name];
    if (!(Number.isInteger(value) && value >= 0)) throw new RangeError(`cache.${name} must be an integer ≥ 0`);
  }
  const entryBytesMax = options.entryBytesMax ?? Math.min(1024 * 1024, Math.floor(options.bytesMax / 8));
  const settings = Object.freeze({ ...options, entryBytesMax });
  const entries = new Map<string, CachedResponse>();
  let bytes = 0;
  let generation = 0;
  // The recent purges, oldest first: a fill checks only the purges since it began. A fill older than the log
  // (more than PURGE_LOG_MAX purges ago; fills are bounded by the upstream timeout) is refused, to be safe.
  const purgeLog: { readonly generation: number; readonly matches: (entry: CacheEntryInfo) => boolean }[] = [];

  function remove(key: string): void {
    const entry = entries.get(key);
    if (entry === undefined) return;
    entries.delete(key);
    bytes -= entry.bytes;
  }

  return {
    options: settings,
    lookup(key) {
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      // Re-inserting moves the key to the end of the Map's order: the Map is the LRU list.
      entries.delete(key);
      entries.set(key, entry);
      return entry;
    },
    store(entry, readGeneration) {
      if (entry.bytes > entryBytesMax || settings.entriesMax === 0) return false;
      if (readGeneration !== generation) {
        if (purgeLog.length === 0 || readGeneration < purgeLog[0].generation - 1) return false;
        for (const purge of purgeLog) if (purge.generation > readGeneration && purge.matches(entry)) return false;
      }
      remove(entry.key);
      entries.set(entry.key, entry);
      bytes += entry.bytes;
      for (const key of entries.keys()) {
        if (entries.size <= settings.entriesMax && bytes <= settings.bytesMax) break;
        remove(key);
      }
      return entries.has(entry.key);
    },
    purge(target) {
      generation++;
      if (typeof target === "function") purgeLog.push({ generation, matches: target });
      else {
        const keys = new Set(target);
        purgeLog.push({ generation, matches: (entry) => keys.has(entry.key) });
      }
      if (purgeLog.length > PURGE_LOG_MAX) purgeLog.splice(0, purgeLog.length - PURGE_LOG_MAX);
      let purged = 0;
      if (typeof target === "function") {
        for (const [key, entry] of entries) {
          if (target(entry)) {
            remove(key);
            purged++;
          }
        }
      } else {
        for (const key of target) {
          if (entries.has(key)) {
            remove(key);
            purged++;
          }
        }
      }
      return purged;
    },
    generation: () => generation,
    stats: () => ({ entries: entries.size, bytes }),
  };
}

/** The size an entry is charged with. */
export function entryBytesOf(key: string, headers: readonly (readonly [string, string])[], body: Uint8Array): number {
  let size = ENTRY_OVERHEAD_BYTES + key.length * 2 + body.byteLength;
  for (const [name, value] of headers) size += name.length + value.length;
  return size;
}

/** A strong ETag from the body: the first 128 bits of its SHA-256, base64url. */
export async function etagOf(body: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body as Uint8Array<ArrayBuffer>));
  return `"${base64url(digest.subarray(0, 16))}"`;
}

/** The lowercase hex SHA-256 of `text` (cache keys of GraphQL queries). */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** True when `If-None-Match` names `etag` (weak comparison, RFC 9110 section 13.1.2) or is `*`. */
export function ifNoneMatchHits(header: string | null, etag: string): boolean {
  if (header === null) return false;
  const opaque = etag.startsWith("W/") ? etag.slice(2) : etag;
  for (const part of header.split(",")) {
    const tag = part.trim();
    if (tag === "*" || (tag.startsWith("W/") ? tag.slice(2) : tag) === opaque) return true;
  }
  return false;
}

/** How long a response may be kept, or undefined when it must not be stored by a shared cache. */
export interface Freshness {
  readonly freshMs: number;
  readonly staleMs: number;
}

/**
 * The freshness of a 200 response by RFC 9111 rules for a shared cache, capped by the edge's own TTL and
 * stale window (purges can be missed while an invalidation stream is down, so the edge never trusts a
 * longer lifetime than its own). A response to a request with `Authorization` is stored only when it says
 * `public` or `s-maxage` (section 3.5).
 */
export function freshnessOf(
  headers: Headers,
  requestHadAuthorization: boolean,
  limits: { readonly ttlMs: number; readonly staleWhileRevalidateMs: number },
): Freshness | undefined {
  if (headers.has("set-cookie") || headers.has("content-encoding")) return undefined;
  const vary = headers.get("vary");
  if (vary !== null && vary.trim() !== "" && vary.toLowerCase() !== "accept-encoding") return undefined;
  let freshMs = limits.ttlMs;
  let staleMs = limits.staleWhileRevalidateMs;
  let isPublic = false;
  const cacheControl = headers.get("cache-control");
  if (cacheControl !== null) {
    let maxAgeMs: number | undefined;
    let sharedMaxAgeMs: number | undefined;
    for (const part of cacheControl.toLowerCase().split(",")) {
      const [name, value] = part.trim().split("=", 2);
      if (name === "no-store" || name === "private" || name === "no-cache") return undefined;
      if (name === "public") isPublic = true;
      const seconds = value === undefined ? NaN : Number(value.replaceAll('"', ""));
      if (name === "max-age" && Number.isFinite(seconds)) maxAgeMs = seconds * 1000;
      if (name === "s-maxage" && Number.isFinite(seconds)) {
        sharedMaxAgeMs = seconds * 1000;
        isPublic = true;
      }
      if (name === "stale-while-revalidate" && Number.isFinite(seconds)) staleMs = Math.min(staleMs, seconds * 1000);
    }
    const originMs = sharedMaxAgeMs ?? maxAgeMs;
    if (originMs !== undefined) freshMs = Math.min(freshMs, originMs);
  }
  if (requestHadAuthorization && !isPublic) return undefined;
  if (freshMs <= 0) return undefined;
  return { freshMs, staleMs };
}

/** The body read whole when it fits in `bytesMax`; otherwise a stream that replays what was read, then the rest. */
export async function readBounded(
  body: ReadableStream<Uint8Array>,
  bytesMax: number,
  timeoutMs?: number,
): Promise<{ readonly bytes: Uint8Array } | { readonly stream: ReadableStream<Uint8Array> }> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  // A body that stalls after its headers would otherwise hold the reader (and whoever waits on it) forever.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = timeoutMs === undefined ? undefined : new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new DOMException(`the body did not arrive within ${timeoutMs} ms`, "TimeoutError"));
      reader.cancel().catch(() => {});
    }, timeoutMs);
  });
  expired?.catch(() => {}); // Raced below; a rejection between reads must not count as unhandled.
  try {
    return await readChunks();
  } finally {
    clearTimeout(timer);
  }

  async function readChunks(): Promise<
    { readonly bytes: Uint8Array } | { readonly stream: ReadableStream<Uint8Array> }
  > {
    while (true) {
      const { done, value } = expired === undefined
        ? await reader.read()
        : await Promise.race([reader.read(), expired]);
      if (done) break;
      chunks.push(value);
      total += value.byteLength;
      if (total > bytesMax) {
        return {
          stream: new ReadableStream<Uint8Array>({
            start(controller) {
              for (const chunk of chunks) controller.enqueue(chunk);
            },
            async pull(controller) {
              const next = await reader.read();
              if (next.done) controller.close();
              else controller.enqueue(next.value);
            },
            cancel: (reason) => reader.cancel(reason),
          }),
        };
      }
    }
    if (chunks.length === 1) return { bytes: chunks[0] };
    const bytes = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return { bytes };
  }
}
