/**
 * @module
 * Token buckets keyed by a string (a client address or a token subject), on an injected clock. Memory is
 * bounded: a bucket that has refilled to its burst is indistinguishable from no bucket, so idle buckets are
 * dropped first when the table is full; if none is idle the oldest tenth goes (failing open for them,
 * which is the cheaper error for a limiter).
 */

/** A bucket refilled at `ratePerSec` that holds at most `burst` requests. */
export interface TokenBucketRate {
  readonly ratePerSec: number;
  readonly burst: number;
}

export interface RateLimiterOptions extends TokenBucketRate {
  /** Buckets kept at once. @default 10_000 */
  readonly bucketsMax?: number;
  /** The clock in milliseconds (tests inject one). */
  readonly now: () => number;
}

export interface RateLimiter {
  /** Takes one token for `key`: 0 when allowed, else the whole seconds to wait (≥ 1) for `Retry-After`. */
  take(key: string): number;
  /** Buckets currently held. */
  size(): number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/** Creates a limiter; the rate is checked here, so a bad configuration fails at start. */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { ratePerSec, burst, now } = options;
  const bucketsMax = options.bucketsMax ?? 10_000;
  if (!(Number.isFinite(ratePerSec) && ratePerSec > 0)) {
    throw new RangeError(`ratePerSec must be a positive number, got ${ratePerSec}`);
  }
  if (!(Number.isInteger(burst) && burst >= 1)) throw new RangeError(`burst must be an integer ≥ 1, got ${burst}`);
  if (!(Number.isInteger(bucketsMax) && bucketsMax >= 1)) {
    throw new RangeError(`bucketsMax must be an integer ≥ 1, got ${bucketsMax}`);
  }
  const ratePerMs = ratePerSec / 1000;
  const buckets = new Map<string, Bucket>();

  function refilled(bucket: Bucket, nowMs: number): number {
    // A clock that steps back must not mint tokens or take them away.
    const elapsedMs = Math.max(0, nowMs - bucket.updatedMs);
    return Math.min(burst, bucket.tokens + elapsedMs * ratePerMs);
  }

  function makeRoom(nowMs: number): void {
    for (const [key, bucket] of buckets) {
      if (refilled(bucket, nowMs) >= burst) buckets.delete(key);
    }
    if (buckets.size < bucketsMax) return;
    // Evicting a batch at once keeps a flood of new keys from paying a full scan on every request.
    let toEvict = Math.max(1, Math.ceil(bucketsMax / 10));
    for (const key of buckets.keys()) {
      buckets.delete(key);
      if (--toEvict === 0) break;
    }
  }

  return {
    take(key) {
      const nowMs = now();
      let bucket = buckets.get(key);
      if (bucket === undefined) {
        if (buckets.size >= bucketsMax) makeRoom(nowMs);
        bucket = { tokens: burst, updatedMs: nowMs };
        buckets.set(key, bucket);
      } else {
        bucket.tokens = refilled(bucket, nowMs);
        bucket.updatedMs = Math.max(bucket.updatedMs, nowMs);
      }
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerSec));
    },
    size: () => buckets.size,
  };
}
