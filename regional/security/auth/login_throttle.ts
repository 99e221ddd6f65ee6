/**
 * @module
 * Failed-login limits per account e-mail and per client address, kept in SQL (`auth_login_failures`) so every
 * process of a region shares them and they survive restarts. Each key has a fixed window that opens at its first
 * count; once a key holds its maximum, attempts for it are refused (429 with `Retry-After`) until the window ends.
 *
 * The check runs before any password hashing, so a refused attempt costs one indexed read and no scrypt. The two keys
 * count differently, because they bound different things:
 *
 * - The e-mail's key bounds guesses at one account, so an attempt that passes reserves its place with an atomic upsert
 *   before it hashes: a burst of concurrent guesses cannot all pass one check and overshoot the limit. A failed attempt
 *   keeps its place, a successful one clears the key, and one that ends without a verdict (hasher busy, database error)
 *   gives its place back.
 * - The address's key counts finished failures only, recorded after the verdict. An address is shared by everyone
 *   behind one NAT, one load generator, or a whole local platform (every hop on 127.0.0.1): had logins in flight held
 *   places there, 21 simultaneous correct logins would have locked the address out for its whole window although
 *   nothing failed. The price: attempts that pass the check together all run, so a burst may overshoot the address's
 *   limit by the attempts in flight at once (bounded by the hasher's queue), once per window.
 *
 * Counting never depends on whether the account exists, so a refusal says nothing about it.
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

  const emailLimitOf = (email: string): Limit => ({
    key: `email:${email}`,
    failuresMax: options.emailFailuresMax,
    windowMs: options.emailWindowMs,
  });
  const addressLimitOf = (address: string | undefined): Limit | undefined =>
    address === undefined ? undefined : {
      key: `address:${address}`,
      failuresMax: options.addressFailuresMax,
      windowMs: options.addressWindowMs,
    };

  /** Deletes every ended window at once: those rows were opened one window ago, so its cost follows the failure rate. */
  async function sweep(atMs: number): Promise<void> {
    if (atMs - lastSweepMs < options.sweepIntervalMs) return;
    lastSweepMs = atMs;
    await sql.query`delete from auth_login_failures where window_ends_at <= ${new Date(atMs)}`;
  }

  /**
   * Refuses the attempt when a key already holds its maximum (a read only: refusals write nothing). Both keys are read
   * before anything is written: a client over its address's limit must not open a counter for each e-mail it tries.
   */
  async function check(limits: readonly Limit[], at: Date): Promise<void> {
    const [first, second = first] = limits;
    const rows = await sql.query<{ key: string; failures: number; window_ends_at: Date }>`
      select key, failures, window_ends_at from auth_login_failures
      where (key = ${first.key} or key = ${second.key}) and window_ends_at > ${at}`;
    const full = rows.filter((row) => row.failures >= limits.find((l) => l.key === row.key)!.failuresMax);
    if (full.length > 0) throw throttled(Math.max(...full.map((row) => row.window_ends_at.getTime())), at.getTime());
  }

  /** Adds one to the key's count atomically, opening a new window when the last one has ended. */
  async function increment(limit: Limit, at: Date): Promise<Reservation & { readonly failures: number }> {
    const [row] = await sql.query<{ failures: number; window_ends_at: Date }>`
      insert into auth_login_failures as f (key, failures, window_ends_at)
      values (${limit.key}, 1, ${new Date(at.getTime() + limit.windowMs)})
      on conflict (key) do update set
        failures = case when f.window_ends_at <= ${at} then 1 else f.failures + 1 end,
        window_ends_at = case when f.window_ends_at <= ${at} then excluded.window_ends_at else f.window_ends_at end
      returning failures, window_ends_at`;
    return { key: limit.key, windowEndsAt: row.window_ends_at, failures: row.failures };
  }

  /** Takes the attempt's place in the e-mail's count before it hashes, or refuses it when the places are gone. */
  async function reserve(limit: Limit, at: Date): Promise<Reservation> {
    const reservation = await increment(limit, at);
    // Concurrent attempts passed the check with this one and took the last places: this one gets none.
    if (reservation.failures > limit.failuresMax) {
      await release(reservation);
      throw throttled(reservation.windowEndsAt.getTime(), at.getTime());
    }
    return reservation;
  }

  /** Gives a place back, in the window it was taken in only (a newer window's count is not this attempt's). */
  async function release({ key, windowEndsAt }: Reservation): Promise<void> {
    await sql.query`
      update auth_login_failures set failures = failures - 1
      where key = ${key} and window_ends_at = ${windowEndsAt} and failures > 0`;
  }

  return {
    async attempt<T>(who: LoginAttempt, verify: () => Promise<T | undefined>): Promise<T | undefined> {
      const atMs = now();
      const at = new Date(atMs);
      const emailLimit = emailLimitOf(who.email);
      const addressLimit = addressLimitOf(who.address);
      await sweep(atMs);
      await check(addressLimit === undefined ? [emailLimit] : [addressLimit, emailLimit], at);
      const reserved = await reserve(emailLimit, at);
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
      if (verified === undefined) {
        // The e-mail's place is the failure already; the address learns of it now that it is one, at the time it
        // happened (a window opened at the attempt's start would end early by the time the hasher took).
        if (addressLimit !== undefined) await increment(addressLimit, new Date(now()));
        return undefined;
      }
      await sql.query`delete from auth_login_failures where key = ${emailLimit.key}`;
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
