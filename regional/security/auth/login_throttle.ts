/**
 * @module
 * Failed-login limits per account e-mail and per client address, kept in SQL (`auth_login_failures`, through
 * `_throttle_counters.ts`) so every process of a region shares them and they survive restarts. Each key has a fixed
 * window that opens at its first count; once a key holds its maximum of failures, attempts for it are refused (429
 * with `Retry-After`) until the window ends.
 *
 * The check runs before any password hashing, so a refused attempt costs one indexed read and no scrypt. The two keys
 * count differently, because they bound different things:
 *
 * - The e-mail's key bounds guesses at one account, so an attempt that passes takes a place in flight with an atomic
 *   upsert before it hashes: a burst of concurrent guesses cannot all pass one check and overshoot the limit. A failed
 *   attempt turns its place into a failure, a successful one clears the key, and one that ends without a verdict
 *   (hasher busy, database error) gives its place back. Places in flight are not failures: an attempt that finds the
 *   places held by attempts still hashing is refused for a second (`Retry-After: 1`), not locked out for the window,
 *   whatever its password; only finished failures lock the account.
 * - The address's key counts finished failures only, recorded after the verdict. An address is shared by everyone
 *   behind one NAT, one load generator, or a whole local platform (every hop on 127.0.0.1): had logins in flight held
 *   places there, 21 simultaneous correct logins would have been refused although nothing failed. The price: attempts
 *   that pass the check together all run, so a burst may overshoot the address's limit by the attempts in flight at
 *   once (bounded by the hasher's queue), once per window.
 *
 * Counting never depends on whether the account exists, so a refusal says nothing about it.
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import {
  COUNT_MAX_LIMIT,
  type Place,
  type ThrottleCounters,
  type ThrottleLimit,
  WINDOW_MS_MAX,
  WINDOW_MS_MIN,
} from "./_throttle_counters.ts";

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
   * How often a process deletes expired counters, sign-ups' included (on the next login or sign-up after the interval).
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

export interface LoginThrottle {
  /**
   * Runs `verify` for a login by `email` (normalised) from `address` (undefined: counted per e-mail only), unless
   * either is throttled: then `ProblemError` 429 and `verify` is not called (`Retry-After: 1` when the e-mail's
   * places are held by attempts still hashing). `verify` resolves the signed-in value or undefined for a wrong e-mail
   * or password, which counts as a failure.
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

/** Throws a RangeError naming the first option out of range. */
export function loginThrottleOptionsOf(options?: LoginThrottleOptions): Readonly<Required<LoginThrottleOptions>> {
  const resolved = { ...LOGIN_THROTTLE_DEFAULTS, ...options };
  for (const name of ["emailFailuresMax", "addressFailuresMax"] as const) {
    const value = resolved[name];
    if (!(Number.isSafeInteger(value) && value >= 1 && value <= COUNT_MAX_LIMIT)) {
      throw new RangeError(`loginThrottle.${name} must be an integer from 1 to ${COUNT_MAX_LIMIT}, got ${value}`);
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
  readonly counters: ThrottleCounters;
  readonly now: () => number;
  readonly options?: LoginThrottleOptions;
}): LoginThrottle {
  const { counters, now } = deps;
  const options = loginThrottleOptionsOf(deps.options);

  const emailLimitOf = (email: string): ThrottleLimit => ({
    key: `email:${email}`,
    max: options.emailFailuresMax,
    windowMs: options.emailWindowMs,
  });
  const addressLimitOf = (address: string | undefined): ThrottleLimit | undefined =>
    address === undefined ? undefined : {
      key: `address:${address}`,
      max: options.addressFailuresMax,
      windowMs: options.addressWindowMs,
    };

  /**
   * Refuses the attempt when a key already holds its maximum of failures (a read only: refusals write nothing). Both
   * keys are read before anything is written: a client over its address's limit must not open a counter for each
   * e-mail it tries.
   */
  async function check(limits: readonly ThrottleLimit[], at: Date): Promise<void> {
    const counts = await counters.finished(limits.map((limit) => limit.key), at);
    const full = limits.flatMap((limit) => {
      const counted = counts.get(limit.key);
      return counted !== undefined && counted.count >= limit.max ? [counted.windowEndsAt.getTime()] : [];
    });
    if (full.length > 0) throw throttled(Math.max(...full), at.getTime());
  }

  /** Takes the attempt's place in the e-mail's count before it hashes, or refuses it when the places are gone. */
  async function reserve(limit: ThrottleLimit, at: Date): Promise<Place> {
    const reserved = await counters.reserve(limit, at);
    if (!("full" in reserved)) return reserved;
    // Full of failures that finished since the check: locked for the window. Full of attempts still hashing: their
    // verdicts come within a hash's time and may free the places (a success clears them all), so a second, not 15
    // minutes; a correct password must not be locked out by logins that have not failed.
    throw reserved.full ? throttled(reserved.windowEndsAt.getTime(), at.getTime()) : busy();
  }

  return {
    async attempt<T>(who: LoginAttempt, verify: () => Promise<T | undefined>): Promise<T | undefined> {
      const atMs = now();
      const at = new Date(atMs);
      const emailLimit = emailLimitOf(who.email);
      const addressLimit = addressLimitOf(who.address);
      await counters.sweep(atMs);
      await check(addressLimit === undefined ? [emailLimit] : [addressLimit, emailLimit], at);
      const reserved = await reserve(emailLimit, at);
      let verified: T | undefined;
      try {
        verified = await verify();
      } catch (error) {
        // The attempt's own error is the answer; a failed release only leaves it held until its window ends.
        await counters.release(reserved).catch((releaseError) =>
          log.warn("login attempt left counted", { error: String(releaseError) })
        );
        throw error;
      }
      if (verified === undefined) {
        // The e-mail's place becomes a failure; the address learns of it now that it is one, at the time it happened
        // (a window opened at the attempt's start would end early by the time the hasher took).
        const failedAt = new Date(now());
        await counters.count(emailLimit, failedAt, reserved);
        if (addressLimit !== undefined) await counters.count(addressLimit, failedAt);
        return undefined;
      }
      await counters.clear(reserved);
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

/** Every place of the e-mail is held by an attempt still hashing: retry in a second. */
function busy(): ProblemError {
  return new ProblemError(
    LOGIN_THROTTLED_CODE,
    "Too many sign-ins to this account at once; try again in 1 second",
    { headers: { "retry-after": "1" } },
  );
}
