/**
 * @module
 * A transaction bounded by its caller's patience: PostgreSQL stops waiting on locks and statements when the
 * caller's deadline passes, and the transaction rolls back instead of committing when the caller has gone.
 * For writes whose late commit does harm: a ReserveStock that commits after its caller gave up holds stock
 * for an order that was canceled meanwhile (the release that came first is made safe by reservations.ts;
 * this keeps the window small and frees the locks and the connection early).
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql, SqlExecutor } from "../../../shared/ports/sql.ts";

/** What a caller allows one call. The gRPC server's `GrpcCallBound` has this shape. */
export interface CallBound {
  /** When the caller stops waiting, in ms since the epoch; undefined: no deadline. */
  readonly deadlineAt?: number;
  /** Aborted when the caller has gone (cancelled, deadline passed, connection closed). */
  readonly signal?: AbortSignal;
}

/**
 * Runs `fn` in one transaction like `sql.transaction`, bounded by `bound`: `lock_timeout` and
 * `statement_timeout` are lowered (never raised) to the time left, and a caller gone before the commit rolls
 * it back. Both end in `COMMON.UPSTREAM_TIMEOUT`, what the caller's client reports for its deadline too.
 */
export async function boundedTransaction<T>(
  sql: Sql,
  bound: CallBound | undefined,
  fn: (tx: SqlExecutor) => Promise<T>,
): Promise<T> {
  if (bound?.deadlineAt === undefined && bound?.signal === undefined) return await sql.transaction(fn);
  assertCallerWaits(bound);
  try {
    return await sql.transaction(async (tx) => {
      const limits = bound.deadlineAt === undefined ? undefined : lowerTimeouts(tx, bound.deadlineAt - Date.now());
      // The settings go out with `fn`'s first statements (pipelined on the transaction's connection, in call
      // order), so the bound costs no round trip of its own.
      const [, result] = await Promise.all([limits, fn(tx)]);
      // The last moment before COMMIT: a caller gone now never learns of this change, so it must not happen.
      assertCallerWaits(bound);
      return result;
    });
  } catch (error) {
    if (error instanceof ProblemError || !callerGone(bound)) throw error;
    // A lock or statement timeout that the deadline set, or a connection error after the caller left.
    throw callerGoneProblem(error);
  }
}

/** Sets `lock_timeout` and `statement_timeout` for this transaction to `remainingMs`, or keeps a lower one. */
function lowerTimeouts(tx: SqlExecutor, remainingMs: number): Promise<unknown> {
  // At least 1 ms: 0 would mean "no timeout"; a deadline already past was refused before the transaction.
  const ms = Math.max(1, Math.floor(remainingMs));
  // 0 means "none", so any bound is lower. `current_setting` shows a time with its unit ("30s", "500ms", "0"),
  // which interval input reads. Not the pg_settings view: it builds every setting's row on each call (0.7-1 ms of
  // the server's time against 0.2 ms, psql \timing), once per ReserveStock.
  return tx.query`
    select set_config(name, least(${ms}::bigint, nullif(extract(epoch from current_setting(name)::interval) * 1000, 0))
      ::bigint::text, true)
    from (values ('lock_timeout'), ('statement_timeout')) as timeouts (name)`;
}

function callerGone(bound: CallBound): boolean {
  return bound.signal?.aborted === true || (bound.deadlineAt !== undefined && Date.now() >= bound.deadlineAt);
}

function assertCallerWaits(bound: CallBound): void {
  if (callerGone(bound)) throw callerGoneProblem(bound.signal?.reason);
}

function callerGoneProblem(cause: unknown): ProblemError {
  return new ProblemError(
    "COMMON.UPSTREAM_TIMEOUT",
    "The caller stopped waiting (deadline passed or call cancelled) before the change committed; nothing was " +
      "changed — retry with the same id",
    { cause },
  );
}
