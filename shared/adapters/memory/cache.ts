/**
 * @module
 * The cache port in process: a bounded map with Redis semantics (PX expiry, PTTL -1/-2, INCRBY keeping
 * the TTL, SET clearing it, the versioned fill and invalidation as the Redis adapter's Lua scripts do them)
 * and same-instance pub/sub. One instance is one "Redis server": two instances
 * share nothing. The clock is injected so TTL behaviour can be tested without sleeping.
 */

import type { Cache } from "../../ports/cache.ts";
import { validFill, validMark, validTtlMs } from "../../ports/cache_checks.ts";

/** Options for {@linkcode createMemoryCache}. */
export interface MemoryCacheOptions {
  /** Milliseconds since an arbitrary epoch. @default Date.now */
  readonly now?: () => number;
  /**
   * Keys held at most. When a write would exceed it, expired keys are purged first, then the least
   * recently used key (read or written) is evicted, like Redis `maxmemory-policy allkeys-lru`.
   * @default 20000
   */
  readonly maxEntries?: number;
  /**
   * Size of keys and values (UTF-16 code units, about bytes for ASCII) held at most, like Redis `maxmemory`:
   * the same eviction makes room, and a single value larger than it is refused with Redis's OOM error.
   * Without it `maxEntries` alone would let a few large values take any amount of memory.
   * @default 67108864 (64 MiB)
   */
  readonly maxBytes?: number;
}

/** 10,000 cached values with their version marks (`setUnlessStale`: a product entry comes with `product:{id}:v`). */
const maxEntriesDefault = 20_000;
const maxBytesDefault = 64 * 1024 * 1024;
/** Redis stores 64-bit integers; JavaScript numbers are exact only up to 2^53. */
const notAnInteger = "ERR value is not an integer or out of range";

interface Entry {
  value: string;
  /** Absolute expiry on the injected clock; null when the key has no TTL. */
  expiresAtMs: number | null;
}

/** Creates an in-process {@linkcode Cache}. */
export function createMemoryCache(options: MemoryCacheOptions = {}): Cache {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? maxEntriesDefault;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError(`createMemoryCache() "maxEntries" must be a positive integer, got ${maxEntries}`);
  }
  const maxBytes = options.maxBytes ?? maxBytesDefault;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new RangeError(`createMemoryCache() "maxBytes" must be a positive integer, got ${maxBytes}`);
  }
  // Map iteration order is insertion order; re-inserting on every access keeps the LRU key first.
  const entries = new Map<string, Entry>();
  let bytes = 0;
  const channels = new Map<string, Set<(message: string) => void>>();
  let closed = false;

  /** The live entry for `key`, touched as most recently used; expired entries are removed on sight. */
  function live(key: string): Entry | undefined {
    const entry = entries.get(key);
    if (!entry) return undefined;
    entries.delete(key);
    if (entry.expiresAtMs !== null && entry.expiresAtMs <= now()) {
      bytes -= sizeOf(key, entry);
      return undefined;
    }
    entries.set(key, entry);
    return entry;
  }

  function remove(key: string): void {
    const entry = entries.get(key);
    if (entry === undefined) return;
    entries.delete(key);
    bytes -= sizeOf(key, entry);
  }

  function store(key: string, entry: Entry): void {
    const size = sizeOf(key, entry);
    if (size > maxBytes) {
      throw new RangeError(`OOM command not allowed: "${key}" takes ${size} bytes, more than maxBytes ${maxBytes}`);
    }
    remove(key);
    if (entries.size >= maxEntries || bytes + size > maxBytes) makeRoom(size);
    entries.set(key, entry);
    bytes += size;
  }

  /** Purges expired keys, then evicts least recently used ones until one more key of `size` fits. */
  function makeRoom(size: number): void {
    const nowMs = now();
    for (const [key, entry] of entries) {
      if (entry.expiresAtMs !== null && entry.expiresAtMs <= nowMs) remove(key);
    }
    for (const key of entries.keys()) {
      if (entries.size < maxEntries && bytes + size <= maxBytes) break;
      remove(key);
    }
  }

  return {
    get: (key) => run(() => live(key)?.value ?? null),
    set: (key, value, setOptions) =>
      run(() => {
        const ttlMs = setOptions?.ttlMs;
        // Like SET without KEEPTTL: a plain set clears any previous TTL.
        store(key, { value, expiresAtMs: ttlMs === undefined ? null : now() + validTtlMs(ttlMs) });
      }),
    del: (...keys) =>
      run(() => {
        let existed = 0;
        for (const key of new Set(keys)) {
          if (live(key)) existed++;
          remove(key);
        }
        return existed;
      }),
    incr: (key, by = 1) =>
      run(() => {
        validIncrement(by);
        const entry = live(key);
        const next = (entry === undefined ? 0 : parseRedisInteger(entry.value)) + by;
        if (!Number.isSafeInteger(next)) throw new RangeError("ERR increment or decrement would overflow");
        // INCRBY keeps the key's TTL.
        store(key, { value: String(next), expiresAtMs: entry?.expiresAtMs ?? null });
        return next;
      }),
    setUnlessStale: (key, value, fill) =>
      run(() => {
        const { version, ttlMs, markTtlMs } = validFill(key, fill);
        // One synchronous step, like the Redis script: nothing else can run between the check and the writes.
        const mark = markOf(fill.markKey);
        if (mark !== undefined && mark > version) return false;
        store(key, { value, expiresAtMs: now() + ttlMs });
        store(fill.markKey, { value: String(version), expiresAtMs: now() + markTtlMs });
        return true;
      }),
    invalidateVersion: (keys, mark) =>
      run(() => {
        const { version, markTtlMs } = validMark(keys, mark);
        const raised = Math.max(markOf(mark.markKey) ?? version, version);
        let existed = 0;
        for (const key of new Set(keys)) {
          if (live(key)) existed++;
          remove(key);
        }
        store(mark.markKey, { value: String(raised), expiresAtMs: now() + markTtlMs });
        return existed;
      }),
    ttlMs: (key) =>
      run(() => {
        const entry = live(key);
        if (!entry) return -2;
        return entry.expiresAtMs === null ? -1 : entry.expiresAtMs - now();
      }),
    publish: (channel, message) =>
      run(() => {
        const handlers = [...channels.get(channel) ?? []];
        // Delivered asynchronously, as over a socket: a subscriber never runs inside publish().
        queueMicrotask(() => {
          for (const onMessage of handlers) deliver(onMessage, channel, message);
        });
        // Redis counts subscribed connections; this instance is one connection however many callbacks.
        return handlers.length > 0 ? 1 : 0;
      }),
    subscribe: (channel, onMessage) =>
      run(() => {
        const handlers = channels.get(channel) ?? new Set();
        const entry = (message: string) => onMessage(message);
        handlers.add(entry);
        channels.set(channel, handlers);
        return () => {
          handlers.delete(entry);
          if (handlers.size === 0 && channels.get(channel) === handlers) channels.delete(channel);
          return Promise.resolve();
        };
      }),
    ping: () => run(() => undefined),
    close() {
      closed = true;
      entries.clear();
      bytes = 0;
      channels.clear();
      return Promise.resolve();
    },
  };

  /** The live mark at `markKey`, or undefined; a value that is not an integer rejects, as in Redis. */
  function markOf(markKey: string): number | undefined {
    const entry = live(markKey);
    return entry === undefined ? undefined : parseRedisInteger(entry.value);
  }

  /** Runs an operation as the port expects: failures (closed, bad input, WRONGTYPE-like) become rejections. */
  function run<T>(operation: () => T): Promise<T> {
    try {
      if (closed) throw new Error("Cache is closed: create a new one");
      return Promise.resolve(operation());
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

function sizeOf(key: string, entry: Entry): number {
  return key.length + entry.value.length;
}

/** Parses a stored value the way Redis INCRBY does: a canonical decimal integer or a rejection. */
function parseRedisInteger(value: string): number {
  if (!/^(0|-?[1-9][0-9]*)$/.test(value)) throw new Error(notAnInteger);
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed)) throw new Error(notAnInteger);
  return parsed;
}

function deliver(onMessage: (message: string) => void, channel: string, message: string): void {
  try {
    onMessage(message);
  } catch (error) {
    console.error(`Cache subscriber for channel "${channel}" threw; the message is dropped for it`, error);
  }
}

function validIncrement(by: number): number {
  if (!Number.isSafeInteger(by)) throw new RangeError(`Cache incr "by" must be a safe integer, got ${by}`);
  return by;
}
