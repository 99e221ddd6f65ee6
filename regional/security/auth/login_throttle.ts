/**
 * @module
 * Failed-login limits per account e-mail and per client address, kept in SQL (`auth_login_failures`) so every
 * process of a region shares them and they survive restarts. Each key has a fixed window that opens at its first
 * failure; once a key holds its maximum, attempts for it are refused (429 with `Retry-After`) until the window ends.
 *
 * The check runs before any password hashing, so a refused attempt costs one indexed read and no scrypt. An attempt
 * that passes reserves its place with an atomic upsert before it hashes: concurrent guesses cannot all pass one
 * check and overshoot the limit. A failed attempt keeps its place; a successful one clears its e-mail's count and
 * gives back its place in the address's; one that ends without a verdict (hasher busy, database error) gives both
 * back. Counting never depends on whether the account exists, so a refusal says nothing about it.
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { log } from "../../../shared/observability/mod.ts";

/**
 * The code of the 429 a throttled login answers (the hasher's overload is `COMMON.RATE_LIMITED`, retried in a
 * second); clients wait for `Retry-After`.
 */
export const LOGIN_THROTTLED_CODE = "AUTH.LOGIN_THROTTLED";

export interface LoginThrottleOptions {
  /**
   * Failed logins for one e-mail within `emailWindowMs` before further attempts for it are refused.
   * @default {5}
   */
  readonly emailFailuresMax?: number;
  /** @default {900_000} (15 minutes) */
  readonly emailWindowMs?: number;
  /**
   * Failed logins from one client address (an IPv6 /64) within `addressWindowMs` before further attempts from it
   * are refused, whatever the e-mail.
   * @default {20}
   */
  readonly addressFailuresMax?: number;
  /** @default {300_000} (5 minutes) */
  readonly addressWindowMs?: number;
  /**
   * How often a process deletes expired counters (on the next login after the interval).
   * @default {60_000}
   */
  readonly sweepIntervalMs?: number;
}

export const LOGIN_THROTTLE_DEFAULTS: Readonly<Required<LoginThrottleOptions>> = Object.freeze({
  emailFailuresMax: 5,
  emailWindowMs: 15 * 60_000,
  addressFailuresMax: 20,
  addressWindowMs: 5 * 60_000,
  sweepIntervalMs: 60_000,
});

const FAILURES_MAX_LIMIT = 1_000;
const WINDOW_MS_MIN = 1_000;
const WINDOW_MS_MAX = 86_400_000;

export interface LoginThrottle {
  /**
   * Runs `verify` for a login by `email` (normalised) from `address` (undefined: counted per e-mail only), unless
   * either is throttled: then `ProblemError` 429 and `verify` is not called. `verify` resolves the signed-in value
   * or undefined for a wrong e-mail or password, which counts as a failure.
   */
  attempt<T>(who: LoginAttempt, verify: () => Promise<T | undefined>): Promise<T | undefined>;
}

/** Who a login attempt counts against. */
export interface LoginAttempt {
  /** Normalised as login reads it (trimmed, lower-case). */
  readonly email: string;
  /** The client's address (`client_address.ts`); undefined when unknown. */
  readonly address?: string;
}

interface Limit {
  readonly key: string;
  readonly failuresMax: number;
  readonly windowMs: number;
}

interface Reservation {
  readonly key: string;
  readonly windowEndsAt: Date;
}

/** Throws a RangeError naming the first option out of range. */
export function loginThrottleOptionsOf(options?: LoginThrottleOptions): Readonly<Required<LoginThrottleOptions>> {
  const resolved = { ...LOGIN_THROTTLE_DEFAULTS, ...options };
  for (const name of ["emailFailuresMax", "addressFailuresMax"] as const) {
    const value = resolved[name];
    if (!(Number.isSafeInteger(value) && value >= 1 && value <= FAILURES_MAX_LIMIT)) {
      throw new RangeError(`loginThrottle.${name} must be an integer from 1 to ${FAILURES_MAX_LIMIT}, got ${value}`);
    }
  }
  for (const name of ["emailWindowMs", "addressWindowMs", "sweepIntervalMs"] as const) {
    const value = resolved[name];
    if (!(Number.isSafeInteger(value) && value >= WINDOW_MS_MIN && value <= WINDOW_MS_MAX)) {
      throw new RangeError(
        `loginThrottle.${name} must be an integer from ${WINDOW_MS_MIN} to ${WINDOW_MS_MAX} ms, got ${value}`,
      );
    }
  }
  return Object.freeze(resolved);
}

export function createLoginThrottle(deps: {
  readonly sql: Sql;
  readonly now: () => number;
  readonly options?: LoginThrottleOptions;
}): LoginThrottle {
  const { sql, now } = deps;
  const options = loginThrottleOptionsOf(deps.options);
  let lastSweepMs = -Infinity;

  const limitsOf = (email: string, address: string | undefined): Limit[] => {
    const limits: Limit[] = [];
    // The address first: a client over its limit must not open a counter for each e-mail it tries.
    if (address !== undefined) {
      limits.push({
        key: `address:${address}`,
        failuresMax: options.addressFailuresMax,
        windowMs: options.addressWindowMs,
      });
    }
    limits.push({ key: `email:${email}`, failuresMax: options.emailFailuresMax, windowMs: options.emailWindowMs });
    return limits;
  };

  /** Deletes every ended window at once: those rows were opened one window ago, so its cost follows the failure rate. */
  async function sweep(atMs: number): Promise<void> {
    if (atMs - lastSweepMs < options.sweepIntervalMs) return;
    lastSweepMs = atMs;
    await sql.query`delete from auth_login_failures where window_ends_at <= ${new Date(atMs)}`;
  }

  /** Refuses the attempt when a key already holds its maximum (a read only: refusals write nothing). */
  async function check(limits: readonly Limit[], at: Date): Promise<void> {
    const [first, second = first] = limits;
    const rows = await sql.query<{ key: string; failures: number; window_ends_at: Date }>`
      select key, failures, window_ends_at from auth_login_failures
      where (key = ${first.key} or key = ${second.key}) and window_ends_at > ${at}`;
    const full = rows.filter((row) => row.failures >= limits.find((l) => l.key === row.key)!.failuresMax);
    if (full.length > 0) throw throttled(Math.max(...full.map((row) => row.window_ends_at.getTime())), at.getTime());
  }

  /** Counts the attempt against each key (atomically, opening a new window when the last one has ended). */
  async function reserve(limits: readonly Limit[], at: Date): Promise<Reservation[]> {
    const reserved: Reservation[] = [];
    for (const limit of limits) {
      const [row] = await sql.query<{ failures: number; window_ends_at: Date }>`
        insert into auth_login_failures as f (key, failures, window_ends_at)
        values (${limit.key}, 1, ${new Date(at.getTime() + limit.windowMs)})
        on conflict (key) do update set
          failures = case when f.window_ends_at <= ${at} then 1 else f.failures + 1 end,
          window_ends_at = case when f.window_ends_at <= ${at} then excluded.window_ends_at else f.window_ends_at end
        returning failures, window_ends_at`;
      reserved.push({ key: limit.key, windowEndsAt: row.window_ends_at });
      // Concurrent attempts passed the check with this one and took the last places: this one gets none.
      if (row.failures > limit.failuresMax) {
        await release(reserved);
        throw throttled(row.window_ends_at.getTime(), at.getTime());
      }
    }
    return reserved;
  }

  /** Gives places back, in the windows they were taken in only (a newer window's count is not this attempt's). */
  async function release(reserved: readonly Reservation[]): Promise<void> {
    for (const { key, windowEndsAt } of reserved) {
      await sql.query`
        update auth_login_failures set failures = failures - 1
        where key = ${key} and window_ends_at = ${windowEndsAt} and failures > 0`;
    }
  }

  return {
    async attempt<T>(who: LoginAttempt, verify: () => Promise<T | undefined>): Promise<T | undefined> {
      const atMs = now();
      const at = new Date(atMs);
      const limits = limitsOf(who.email, who.address);
      await sweep(atMs);
      await check(limits, at);
      const reserved = await reserve(limits, at);
      let verified: T | undefined;
      try {
        verified = await verify();
      } catch (error) {
        // The attempt's own error is the answer; a failed release only leaves it counted until its window ends.
        await release(reserved).catch((releaseError) =>
          log.warn("login attempt left counted", { error: String(releaseError) })
        );
        throw error;
      }
      if (verified === undefined) return undefined;
      const emailKey = limits[limits.length - 1].key;
      await sql.query`delete from auth_login_failures where key = ${emailKey}`;
      await release(reserved.filter((r) => r.key !== emailKey));
      return verified;
    },
  };
}

function throttled(windowEndsMs: number, atMs: number): ProblemError {
  const retryAfterSec = Math.max(1, Math.ceil((windowEndsMs - atMs) / 1000));
  return new ProblemError(
    LOGIN_THROTTLED_CODE,
    `Too many failed sign-ins; try again in ${retryAfterSec} seconds`,
    { headers: { "retry-after": String(retryAfterSec) } },
  );
}
