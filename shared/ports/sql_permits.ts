/**
 * @module
 * Bounded access to a SQL adapter's connections, shared by the postgres.js and PGlite adapters. One permit per
 * connection: a top-level query, exec, transaction or ping holds one for as long as it runs (a transaction's own
 * statements run on its connection and take none). A caller that finds every permit held waits in a FIFO queue
 * of at most `maxWaiting` callers, for at most `acquireTimeoutMs`; past either bound it fails at once with
 * `COMMON.UPSTREAM_UNAVAILABLE` (HTTP 503, gRPC UNAVAILABLE) instead of queueing inside the driver without limit.
 * A caller that gave up is removed from the queue, so its statement never runs later.
 */

import { ProblemError } from "../contracts/problem.ts";

/**
 * How long a caller waits for a connection, and how many may wait. Both adapters accept these options.
 *
 * A healthy pool hands a connection over in milliseconds even during a burst (a statement takes about 0.1 ms, a
 * transaction a few ms); a caller that waits longer than this is behind slow work that holds every connection.
 */
export interface SqlPoolBounds {
  /**
   * Milliseconds a caller waits for a free connection before it fails with `COMMON.UPSTREAM_UNAVAILABLE`.
   * @default 2000 ({@linkcode SQL_ACQUIRE_TIMEOUT_MS_DEFAULT})
   */
  readonly acquireTimeoutMs?: number;
  /**
   * Callers that may wait at once; one more is refused at once with `COMMON.UPSTREAM_UNAVAILABLE`. 0 refuses
   * every caller that finds no free connection.
   * @default 1000 ({@linkcode SQL_MAX_WAITING_DEFAULT})
   */
  readonly maxWaiting?: number;
}

/**
 * The default wait for a connection. Long enough that a burst on a healthy pool never fails (hand-overs take
 * milliseconds, even on a loaded 2-core machine running tests in parallel); short enough that the service
 * answers its own 503 with Retry-After well before the proxy in front of it gives up (its upstream budget,
 * `BV_CALL_TIMEOUT_MS`, is 5 s by default), leaving about 3 s for the statements themselves.
 */
export const SQL_ACQUIRE_TIMEOUT_MS_DEFAULT = 2_000;

/**
 * The default bound on waiting callers. About twice the largest burst the platform is measured with (the
 * benches keep up to 512 requests in flight against one service), so a healthy burst is never refused; a flood
 * beyond it is refused at once rather than each caller holding its request, its memory and a timer for the whole
 * wait. Waiting callers cost little each; the deadline, not this bound, is what limits how long work queues.
 */
export const SQL_MAX_WAITING_DEFAULT = 1_000;

/**
 * Urgent callers (readiness pings) that may wait at once. They take the next free connection ahead of the queue:
 * behind up to `maxWaiting` requests a ping timed out whenever the pool was busy for a second, and the region's
 * `/readyz` turned red under load, so the edge moved its traffic to the other region (a review finding).
 */
const URGENT_WAITING_MAX = 16;

/** Seconds a refused caller is told to wait before retrying (the `Retry-After` header of the 503). */
const RETRY_AFTER_SEC = 1;

/** The permits of one adapter instance. */
export interface SqlPermits {
  /**
   * Runs `work` once a permit is free and releases it when `work` settles. Rejects without running `work` when
   * no permit frees within `acquireTimeoutMs` (the pool's bound unless a shorter one is given) or when
   * `maxWaiting` callers already wait.
   */
  run<T>(work: () => Promise<T>, acquireTimeoutMs?: number, options?: { readonly urgent?: boolean }): Promise<T>;
  /** Resolves once no permit is held and nobody waits (for `close()`, after new callers are turned away). */
  whenIdle(): Promise<void>;
}

/** Creates `connections` permits with the bounds of `options`; `what` names the database in error messages. */
export function createSqlPermits(what: string, connections: number, options: SqlPoolBounds = {}): SqlPermits {
  const { acquireTimeoutMs = SQL_ACQUIRE_TIMEOUT_MS_DEFAULT, maxWaiting = SQL_MAX_WAITING_DEFAULT } = options;
  if (!Number.isInteger(connections) || connections < 1) {
    throw new RangeError(`Cannot bound the ${what} connections: there are "${connections}"; use 1 or more`);
  }
  assertTimeout(what, acquireTimeoutMs);
  if (!Number.isInteger(maxWaiting) || maxWaiting < 0) {
    throw new RangeError(`Cannot bound the ${what} connections: maxWaiting is "${maxWaiting}"; use 0 or more`);
  }

  let free = connections;
  // A Set keeps insertion order (FIFO) and removes a caller that gave up in O(1).
  const waiting = new Set<() => void>();
  const urgentWaiting = new Set<() => void>();
  let idleWaiters: (() => void)[] = [];

  const settleIdle = () => {
    if (free !== connections || waiting.size > 0 || urgentWaiting.size > 0) return;
    const resolvers = idleWaiters;
    idleWaiters = [];
    for (const resolve of resolvers) resolve();
  };

  const release = () => {
    const queue = urgentWaiting.size > 0 ? urgentWaiting : waiting;
    const next = queue.values().next();
    if (next.done) {
      free++;
      settleIdle();
      return;
    }
    // The permit passes straight to the longest (urgent, then ordinary) waiter, so a newcomer cannot overtake.
    queue.delete(next.value);
    next.value();
  };

  const acquire = (timeoutMs: number, urgent: boolean): Promise<void> => {
    if (free > 0 && waiting.size === 0 && urgentWaiting.size === 0) {
      free--;
      return Promise.resolve();
    }
    const queue = urgent ? urgentWaiting : waiting;
    if (queue.size >= (urgent ? URGENT_WAITING_MAX : maxWaiting)) {
      return Promise.reject(
        unavailable(
          `${what} is saturated: all ${connections} connections are in use and ${queue.size} callers already ` +
            `wait (maxWaiting); retry shortly`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      // JavaScript runs one callback at a time: either the grant or the timer comes first, and whichever does
      // takes the caller out of the queue, so a caller that timed out is never granted (no late statement).
      const grant = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        queue.delete(grant);
        settleIdle();
        reject(
          unavailable(
            `No ${what} connection became free within ${timeoutMs} ms (all ${connections} in use); retry shortly`,
          ),
        );
      }, timeoutMs);
      queue.add(grant);
    });
  };

  return {
    async run<T>(
      work: () => Promise<T>,
      timeoutMs: number = acquireTimeoutMs,
      runOptions: { readonly urgent?: boolean } = {},
    ): Promise<T> {
      assertTimeout(what, timeoutMs);
      await acquire(Math.min(timeoutMs, acquireTimeoutMs), runOptions.urgent === true);
      try {
        return await work();
      } finally {
        release();
      }
    },
    whenIdle(): Promise<void> {
      return new Promise((resolve) => {
        idleWaiters.push(resolve);
        settleIdle();
      });
    },
  };
}

function assertTimeout(what: string, timeoutMs: number): void {
  // setTimeout treats a delay above 2^31-1 ms (about 24.8 days) as 1 ms, so such a bound would fire at once.
  if (!Number.isFinite(timeoutMs) || timeoutMs < 1 || timeoutMs > 2 ** 31 - 1) {
    throw new RangeError(
      `Cannot bound the ${what} connections: acquireTimeoutMs is "${timeoutMs}"; use 1 to ${2 ** 31 - 1} ms`,
    );
  }
}

function unavailable(detail: string): ProblemError {
  return new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", detail, {
    headers: { "retry-after": String(RETRY_AFTER_SEC) },
  });
}
