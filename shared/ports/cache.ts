/**
 * @module
 * The cache port: get/set with TTL, atomic counters, pub/sub, and versioned fills for read-through caches.
 * Real adapter: ioredis (one key prefix per region); embedded adapter: an in-process map. Values are strings;
 * callers serialise.
 */

/**
 * A per-entity high-water mark: the highest version of the entity the cache has heard of, kept under its own
 * key. A read-through fill that read an older version than the mark is refused, so a fill that raced an
 * invalidation cannot put an older value back (see {@linkcode Cache.setUnlessStale}).
 */
export interface VersionMark {
  /** The key that holds the mark (a decimal integer). It is a key like any other: prefixed, counted, evictable. */
  readonly markKey: string;
  /** A non-negative safe integer that grows with every change of the entity (e.g. a row's `version`). */
  readonly version: number;
  /**
   * How long the mark lives after it was last raised. Make it longer than the entries it guards live and than
   * any fill can take from its database read to its cache write: a fill slower than that is no longer guarded.
   */
  readonly markTtlMs: number;
}

export interface Cache {
  get(key: string): Promise<string | null>;
  /** Sets `key`; with `ttlMs` the key expires after that many milliseconds. */
  set(key: string, value: string, options?: { readonly ttlMs?: number }): Promise<void>;
  /** Deletes keys; resolves with how many existed. */
  del(...keys: string[]): Promise<number>;
  /** Atomically adds `by` (default 1) and resolves with the new value; a missing key counts as 0. */
  incr(key: string, by?: number): Promise<number>;
  /** Remaining time to live in ms; -1 when the key has no TTL; -2 when it does not exist. */
  ttlMs(key: string): Promise<number>;
  /**
   * A read-through fill that cannot go backwards. Atomically: when the mark at `markKey` is missing or at
   * most `version`, sets `key` to `value` for `ttlMs`, sets the mark to `version` for `markTtlMs`, and resolves
   * true; when the mark is higher (the entity changed after the value was read), changes nothing and resolves
   * false. Rejects when the mark is not an integer.
   */
  setUnlessStale(
    key: string,
    value: string,
    options: VersionMark & { readonly ttlMs: number },
  ): Promise<boolean>;
  /**
   * The invalidation that pairs with {@linkcode setUnlessStale}. Atomically: raises the mark to
   * max(mark, `version`) for `markTtlMs` (a lower version never lowers it) and deletes `keys`; resolves with how
   * many of `keys` existed. Idempotent, so a redelivered or reordered change needs no bookkeeping.
   */
  invalidateVersion(keys: readonly string[], mark: VersionMark): Promise<number>;
  /** Publishes on a channel; resolves with the number of receivers. */
  publish(channel: string, message: string): Promise<number>;
  /** Subscribes to a channel; the returned function unsubscribes. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}
