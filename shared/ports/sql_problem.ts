/**
 * @module
 * How a request answers a database failure that passes: a statement cancelled by `statement_timeout`
 * (57014), a lock not available (55P03), a serialization failure or deadlock (40001, 40P01), a server short
 * of resources or shutting down. The same SQLSTATEs a consumer retries later ({@link isTransientSqlFailure});
 * a request answers them 503 `COMMON.UPSTREAM_UNAVAILABLE` with Retry-After, like a pool with no free
 * connection (`sql_permits.ts`), so the client retries instead of reading a 500 as a bug. Any other SQL
 * failure (a constraint, bad data, a syntax error) fails the same way every time and stays a 500.
 */
import { ProblemError } from "../contracts/problem.ts";
import { isTransientSqlFailure } from "./retry_later.ts";

/** Seconds a client is told to wait before retrying (the `Retry-After` of the 503), as for a full pool. */
export const SQL_FAILURE_RETRY_AFTER_SEC = 1;

/** The 503 problem for a transient SQL failure; undefined for anything else. */
export function problemOfSqlFailure(error: unknown): ProblemError | undefined {
  if (!isTransientSqlFailure(error)) return undefined;
  return new ProblemError(
    "COMMON.UPSTREAM_UNAVAILABLE",
    "The database could not finish the request right now (busy, timed out or restarting); retry it shortly",
    { headers: { "retry-after": String(SQL_FAILURE_RETRY_AFTER_SEC) }, cause: error },
  );
}
