/**
 * @module
 * How a request answers a database failure that passes when the client simply tries again: a serialization
 * failure or deadlock (40001, 40P01), a lock not available (55P03), a statement cancelled by
 * `statement_timeout` (57014), a server shutting down, restarting or refusing connections (57P01, 57P02,
 * 57P03, 53300) and a lost connection (class 08). A request answers these 503 `COMMON.UPSTREAM_UNAVAILABLE`
 * with Retry-After, like a pool with no free connection (`sql_permits.ts`), so the client retries instead of
 * reading a 500 as a bug.
 *
 * An explicit list, not the classes a consumer retries later (`isTransientSqlFailure` in `retry_later.ts`):
 * a consumer redelivers for as long as it takes, so it may wait out a full disk (53100) or an object in the
 * wrong state (55000, 55006), but a client told "retry in a second" would only hammer a failure that needs an
 * operator; a deferred constraint failing at COMMIT (40002) or a missing file (58P01) fails the same way every
 * time. Those, and every other SQL failure (a constraint, bad data, a syntax error), stay a 500.
 */
import { ProblemError } from "../contracts/problem.ts";
import { SqlError } from "./sql_values.ts";

/** Seconds a client is told to wait before retrying (the `Retry-After` of the 503), as for a full pool. */
export const SQL_FAILURE_RETRY_AFTER_SEC = 1;
/**
 * The `Retry-After` of a statement cancelled by `statement_timeout` (57014): a query heavy enough to time out
 * once likely times out again at once, so the client waits longer than for a lock or a restart.
 */
export const SQL_TIMEOUT_RETRY_AFTER_SEC = 5;

/** The SQLSTATEs a request answers 503, with the seconds of its Retry-After. */
const RETRYABLE_SQLSTATES: ReadonlyMap<string, number> = new Map([
  ["40001", SQL_FAILURE_RETRY_AFTER_SEC], // serialization_failure
  ["40P01", SQL_FAILURE_RETRY_AFTER_SEC], // deadlock_detected
  ["55P03", SQL_FAILURE_RETRY_AFTER_SEC], // lock_not_available
  ["57014", SQL_TIMEOUT_RETRY_AFTER_SEC], // query_canceled (statement_timeout)
  ["57P01", SQL_FAILURE_RETRY_AFTER_SEC], // admin_shutdown
  ["57P02", SQL_FAILURE_RETRY_AFTER_SEC], // crash_shutdown
  ["57P03", SQL_FAILURE_RETRY_AFTER_SEC], // cannot_connect_now (starting up, recovering)
  ["53300", SQL_FAILURE_RETRY_AFTER_SEC], // too_many_connections
]);
/**
 * Class 08 (connection_exception): the connection broke or could not be made; a new one may well work. Not
 * 08P01 (protocol_violation): client and server disagree on the wire protocol, which no retry changes.
 */
const CONNECTION_FAILURE_CLASS = "08";
const PROTOCOL_VIOLATION = "08P01";

/** The 503 problem for a SQL failure that a retry may get past; undefined for anything else. */
export function problemOfSqlFailure(error: unknown): ProblemError | undefined {
  const retryAfterSec = retryAfterSecOf(error);
  if (retryAfterSec === undefined) return undefined;
  return new ProblemError(
    "COMMON.UPSTREAM_UNAVAILABLE",
    "The database could not finish the request right now (busy, timed out or restarting); retry it shortly",
    { headers: { "retry-after": String(retryAfterSec) }, cause: error },
  );
}

/**
 * How an edge logs a SQL failure it answered with {@link problemOfSqlFailure}. A deadlock (40P01) is a bug
 * even though a retry gets past it — two code paths take the same locks in opposite orders — so it is an
 * error with its stack, to be found and fixed; the rest are load, contention or a restart: warnings.
 */
export function logEntryOfSqlFailure(
  error: unknown,
): { readonly level: "error" | "warn"; readonly fields: Readonly<Record<string, unknown>> } {
  const sqlstate = error instanceof SqlError ? error.code : undefined;
  const fields = { sqlstate, error: String(error) };
  return sqlstate === "40P01"
    ? { level: "error", fields: { ...fields, stack: (error as Error).stack } }
    : { level: "warn", fields };
}

function retryAfterSecOf(error: unknown): number | undefined {
  if (!(error instanceof SqlError)) return undefined;
  if (error.code.startsWith(CONNECTION_FAILURE_CLASS) && error.code !== PROTOCOL_VIOLATION) {
    return SQL_FAILURE_RETRY_AFTER_SEC;
  }
  return RETRYABLE_SQLSTATES.get(error.code);
}
