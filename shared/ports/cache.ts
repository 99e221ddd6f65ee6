/**
 * @module
 * The cache port: get/set with TTL, atomic counters and pub/sub. Real adapter: ioredis (one key prefix per
 * region); embedded adapter: an in-process map. Values are strings; callers serialise.
 */

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
  /** Publishes on a channel; resolves with the number of receivers. */
  publish(channel: string, message: string): Promise<number>;
  /** Subscribes to a channel; the returned function unsubscribes. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}
