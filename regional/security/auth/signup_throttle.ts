/**
 * @module
 * Sign-ups per client address, kept in SQL beside the login counters (`auth_login_failures`, keys
 * `signup:<address>`), so every process of a region shares them and they survive restarts. A sign-up hashes its
 * password with scrypt in the region's shared, bounded hasher queue: without a bound, one address creating accounts in
 * a loop filled that queue (every other login and sign-up of the region got 429) and created accounts without end.
 *
 * A sign-up takes a place in its address's count with an atomic upsert before it hashes, so a burst from one address
 * runs at most the limit's hashes however many arrive at once. A sign-up that ends with a verdict (the account created,
 * or its e-mail taken: either cost a hash) keeps its place for the window; one that ends without one (hasher busy,
 * database error) gives it back. Full of finished sign-ups: refused until the window ends; full of sign-ups still
 * hashing: refused for a second.
 *
 * Loopback is not counted by default: a request resolves to it only when it started on this machine (the local
 * platform, its journeys and benches, where every hop is 127.0.0.1 and every user is that one address), and a client
 * able to name loopback could name any other address as well (`client_address.ts`). No address (an in-process call)
 * is not counted either: there is nothing to count against.
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import { COUNT_MAX_LIMIT, type ThrottleCounters, WINDOW_MS_MAX, WINDOW_MS_MIN } from "./_throttle_counters.ts";
import { isLoopbackClientAddress } from "./client_address.ts";

/** The code of the 429 a throttled sign-up answers; clients wait for `Retry-After`. */
export const SIGNUP_THROTTLED_CODE = "AUTH.SIGNUP_THROTTLED";

export interface SignupThrottleOptions {
  /**
   * Sign-ups from one client address (an IPv6 /64) within `addressWindowMs`, in flight or done, before further ones
   * from it are refused.
   * @default {10}
   */
  readonly addressSignupsMax?: number;
  /** @default {3_600_000} (1 hour) */
  readonly addressWindowMs?: number;
  /**
   * Count sign-ups from loopback (127.0.0.0/8, ::1) too. Off by default: only this machine's own requests resolve to
   * it, and the local platform signs every user up from it.
   * @default {false}
   */
  readonly countLoopback?: boolean;
}

export const SIGNUP_THROTTLE_DEFAULTS: Readonly<Required<SignupThrottleOptions>> = Object.freeze({
  addressSignupsMax: 10,
  addressWindowMs: 60 * 60_000,
  countLoopback: false,
});

export interface SignupThrottle {
  /**
   * Runs `signup` for a client at `address` (undefined: not counted) unless the address is throttled: then
   * `ProblemError` 429 `AUTH.SIGNUP_THROTTLED` with `Retry-After`, and `signup` is not called. `signup` resolving
   * (whatever it resolves) counts; rejecting gives the place back.
   */
  attempt<T>(address: string | undefined, signup: () => Promise<T>): Promise<T>;
}

/** Throws a RangeError naming the first option out of range. */
export function signupThrottleOptionsOf(options?: SignupThrottleOptions): Readonly<Required<SignupThrottleOptions>> {
  const resolved = { ...SIGNUP_THROTTLE_DEFAULTS, ...options };
  const { addressSignupsMax: max, addressWindowMs: windowMs, countLoopback } = resolved;
  if (!(Number.isSafeInteger(max) && max >= 1 && max <= COUNT_MAX_LIMIT)) {
    throw new RangeError(
      `signupThrottle.addressSignupsMax must be an integer from 1 to ${COUNT_MAX_LIMIT}, got ${max}`,
    );
  }
  if (!(Number.isSafeInteger(windowMs) && windowMs >= WINDOW_MS_MIN && windowMs <= WINDOW_MS_MAX)) {
    throw new RangeError(
      `signupThrottle.addressWindowMs must be an integer from ${WINDOW_MS_MIN} to ${WINDOW_MS_MAX} ms, got ${windowMs}`,
    );
  }
  if (typeof countLoopback !== "boolean") {
    throw new RangeError(`signupThrottle.countLoopback must be a boolean, got ${countLoopback}`);
  }
  return Object.freeze(resolved);
}

export function createSignupThrottle(deps: {
  readonly counters: ThrottleCounters;
  readonly now: () => number;
  readonly options?: SignupThrottleOptions;
}): SignupThrottle {
  const { counters, now } = deps;
  const options = signupThrottleOptionsOf(deps.options);
  const counted = (address: string | undefined): address is string =>
    address !== undefined && (options.countLoopback || !isLoopbackClientAddress(address));

  return {
    async attempt<T>(address: string | undefined, signup: () => Promise<T>): Promise<T> {
      if (!counted(address)) return await signup();
      const atMs = now();
      const at = new Date(atMs);
      const limit = { key: `signup:${address}`, max: options.addressSignupsMax, windowMs: options.addressWindowMs };
      await counters.sweep(atMs);
      const reserved = await counters.reserve(limit, at);
      if ("full" in reserved) throw throttled(reserved.full ? reserved.windowEndsAt.getTime() - atMs : 0);
      let result: T;
      try {
        result = await signup();
      } catch (error) {
        // The sign-up's own error is the answer; a failed release only leaves it held until its window ends.
        await counters.release(reserved).catch((releaseError) =>
          log.warn("sign-up attempt left counted", { error: String(releaseError) })
        );
        throw error;
      }
      // The account exists now: a failed count must not turn its creation into an error (the place stays held instead).
      await counters.count(limit, new Date(now()), reserved).catch((countError) =>
        log.warn("sign-up left in flight", { error: String(countError) })
      );
      return result;
    },
  };
}

/** `waitMs` 0: every place is held by a sign-up still hashing, so a second is enough. */
function throttled(waitMs: number): ProblemError {
  const retryAfterSec = Math.max(1, Math.ceil(waitMs / 1000));
  return new ProblemError(
    SIGNUP_THROTTLED_CODE,
    `Too many sign-ups from this address; try again in ${retryAfterSec} seconds`,
    { headers: { "retry-after": String(retryAfterSec) } },
  );
}
