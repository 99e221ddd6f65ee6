/**
 * @module
 * Counters with a fixed window per key, in SQL (`auth_login_failures`), shared by the login and sign-up throttles so
 * every process of a region sees the same counts and they survive restarts. A key's window opens at its first place
 * taken; a row past its window counts nothing, and its next place restarts it.
 *
 * A row holds two numbers: `failures`, the attempts that finished and count (failed logins, sign-ups done), and
 * `in_flight`, the attempts that took a place before their work (scrypt) and have no verdict yet. Only finished ones
 * fill a key for its whole window; places in flight are given back or turned into a count within a hash's time, so a
 * key that is full of them refuses for a second only.
 */
import type { Sql } from "../../../shared/ports/sql.ts";

/** The largest `max` a throttle option may set. */
export const COUNT_MAX_LIMIT = 1_000;
/** The shortest and longest windows (and sweep intervals) a throttle option may set. */
export const WINDOW_MS_MIN = 1_000;
export const WINDOW_MS_MAX = 86_400_000;

/** A key and its bound. */
export interface ThrottleLimit {
  readonly key: string;
  /** Places (finished counts + attempts in flight) the key holds in a window. */
  readonly max: number;
  readonly windowMs: number;
}

/** A place taken by {@linkcode ThrottleCounters.reserve}, valid in the window it was taken in only. */
export interface Place {
  readonly key: string;
  readonly windowEndsAt: Date;
}

/** Why {@linkcode ThrottleCounters.reserve} gave no place. */
export interface Refusal {
  /** True when finished counts fill the key (refused until `windowEndsAt`); false when attempts in flight hold it. */
  readonly full: boolean;
  readonly windowEndsAt: Date;
}

export interface ThrottleCounters {
  /** The finished counts of `keys` (one or two) in their live windows (a key without one is absent). */
  finished(keys: readonly string[], at: Date): Promise<Map<string, { count: number; windowEndsAt: Date }>>;
  /** Takes a place in flight atomically, unless finished counts and places in flight fill the key already. */
  reserve(limit: ThrottleLimit, at: Date): Promise<Place | Refusal>;
  /** Adds one finished count, turning `place` (if still in its window) from in flight into that count. */
  count(limit: ThrottleLimit, at: Date, place?: Place): Promise<void>;
  /** Gives `place` back: its attempt ended without a verdict. */
  release(place: Place): Promise<void>;
  /** Gives `place` back and forgets the key's finished counts (a correct login clears its e-mail). */
  clear(place: Place): Promise<void>;
  /** Deletes every ended window, at most once per `sweepIntervalMs` in this process. */
  sweep(atMs: number): Promise<void>;
}

export function createThrottleCounters(
  deps: { readonly sql: Sql; readonly sweepIntervalMs: number },
): ThrottleCounters {
  const { sql, sweepIntervalMs } = deps;
  let lastSweepMs = -Infinity;
  return {
    async finished(keys, at) {
      // One statement with a fixed shape: a login reads its e-mail's key and its address's, never more.
      if (keys.length < 1 || keys.length > 2) throw new RangeError(`finished() reads 1 or 2 keys, got ${keys.length}`);
      const [first, second = first] = keys;
      const rows = await sql.query<{ key: string; failures: number; window_ends_at: Date }>`
        select key, failures, window_ends_at from auth_login_failures
        where (key = ${first} or key = ${second}) and window_ends_at > ${at}`;
      return new Map(rows.map((row) => [row.key, { count: row.failures, windowEndsAt: row.window_ends_at }]));
    },

    async reserve({ key, max, windowMs }, at) {
      // The `where` makes the check and the place one atomic step on the row: concurrent attempts cannot all pass it.
      const [row] = await sql.query<{ window_ends_at: Date }>`
        insert into auth_login_failures as f (key, failures, in_flight, window_ends_at)
        values (${key}, 0, 1, ${new Date(at.getTime() + windowMs)})
        on conflict (key) do update set
          failures = case when f.window_ends_at <= ${at} then 0 else f.failures end,
          in_flight = case when f.window_ends_at <= ${at} then 1 else f.in_flight + 1 end,
          window_ends_at = case when f.window_ends_at <= ${at} then excluded.window_ends_at else f.window_ends_at end
        where f.window_ends_at <= ${at} or f.failures + f.in_flight < ${max}
        returning window_ends_at`;
      if (row) return { key, windowEndsAt: row.window_ends_at };
      // Refused: a read only, to say for how long. The row may have moved since; the answer is advice either way.
      const [held] = await sql.query<{ failures: number; window_ends_at: Date }>`
        select failures, window_ends_at from auth_login_failures where key = ${key}`;
      return { full: held !== undefined && held.failures >= max, windowEndsAt: held?.window_ends_at ?? at };
    },

    async count({ key, windowMs }, at, place) {
      // A window that ended while the attempt ran restarts with this count alone: the places of the old window
      // (this one's included) are not the new window's, and are never given back to it (their window_ends_at differs).
      const placeEndsAt = place?.windowEndsAt ?? null;
      await sql.query`
        insert into auth_login_failures as f (key, failures, in_flight, window_ends_at)
        values (${key}, 1, 0, ${new Date(at.getTime() + windowMs)})
        on conflict (key) do update set
          failures = case when f.window_ends_at <= ${at} then 1 else f.failures + 1 end,
          in_flight = case
            when f.window_ends_at <= ${at} then 0
            when f.window_ends_at = ${placeEndsAt} then greatest(f.in_flight - 1, 0)
            else f.in_flight end,
          window_ends_at = case when f.window_ends_at <= ${at} then excluded.window_ends_at else f.window_ends_at end`;
    },

    async release({ key, windowEndsAt }) {
      await sql.query`
        update auth_login_failures set in_flight = in_flight - 1
        where key = ${key} and window_ends_at = ${windowEndsAt} and in_flight > 0`;
    },

    async clear({ key, windowEndsAt }) {
      await sql.query`
        update auth_login_failures set
          failures = 0,
          in_flight = case when window_ends_at = ${windowEndsAt} then greatest(in_flight - 1, 0) else in_flight end
        where key = ${key}`;
      // A row nobody holds goes, so the next count opens a fresh window; one with attempts in flight stays for them.
      await sql.query`delete from auth_login_failures where key = ${key} and failures = 0 and in_flight = 0`;
    },

    async sweep(atMs) {
      // Every ended window at once: those rows were opened one window ago, so the cost follows the rate of counts.
      if (atMs - lastSweepMs < sweepIntervalMs) return;
      lastSweepMs = atMs;
      await sql.query`delete from auth_login_failures where window_ends_at <= ${new Date(atMs)}`;
    },
  };
}
