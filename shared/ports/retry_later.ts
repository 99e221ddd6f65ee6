/** @module The error by which a consumer says "not my input's fault: deliver it again later". */
import { SqlError } from "./sql_values.ts";

/**
 * What a handler (of the event log or the work queue) throws when its record or message is fine but something
 * the effect needs is not: a database, cache or broker is down or timed out. It is delivered again, after a
 * delay, for as long as it keeps failing this way: such failures never count toward the attempts a bad record
 * or message gets (the event log's `maxAttempts`, the work queue's retry schedule) and never dead-letter it. A
 * consumer that validates its input itself and throws this for every other failure loses nothing to an outage;
 * the price is work that waits (lag grows, each retry is logged) until the dependency is back.
 */
export class RetryLaterError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RetryLaterError";
  }
}

/**
 * SQLSTATE classes of failures that pass (connection lost, serialization or deadlock, out of resources, lock
 * not available, cancelled or shutting down, system error); any other SQLSTATE (bad data, a constraint, a
 * syntax error) fails the same way every time it is tried.
 */
const TRANSIENT_SQLSTATE_CLASSES = new Set(["08", "40", "53", "55", "57", "58"]);
/**
 * Transient codes of otherwise deterministic classes: the server ended a transaction that sat idle too long
 * (25P03, the adapter sets `idle_in_transaction_session_timeout`) or ran past `transaction_timeout` (25P04).
 * The rest of class 25 (a statement in an aborted or read-only transaction) recurs on every try.
 */
const TRANSIENT_SQLSTATES = new Set(["25P03", "25P04"]);

/** True for an error from the SQL port whose SQLSTATE says retrying the same statement cannot succeed. */
export function isDeterministicSqlFailure(error: unknown): boolean {
  return error instanceof SqlError && !isTransientSqlState(error.code);
}

/** True for an error from the SQL port whose SQLSTATE says the same statement may succeed when tried again. */
export function isTransientSqlFailure(error: unknown): error is SqlError {
  return error instanceof SqlError && isTransientSqlState(error.code);
}

function isTransientSqlState(code: string): boolean {
  return TRANSIENT_SQLSTATE_CLASSES.has(code.slice(0, 2)) || TRANSIENT_SQLSTATES.has(code);
}

/**
 * Runs `effect` and rethrows its failure as a {@linkcode RetryLaterError}, except an error that already is
 * one, one of `passThrough`'s, or a SQL failure that would recur on every try ({@link isDeterministicSqlFailure}:
 * rethrown as it is, so it counts toward the attempts and ends dead-lettered instead of stalling the
 * partition). For the part of a handler that runs after its record was validated.
 */
export async function retryLaterOnFailure<T>(
  what: string,
  effect: () => Promise<T>,
  passThrough: (error: unknown) => boolean = () => false,
): Promise<T> {
  try {
    return await effect();
  } catch (error) {
    if (error instanceof RetryLaterError || passThrough(error) || isDeterministicSqlFailure(error)) throw error;
    throw new RetryLaterError(`${what} failed; delivered again later: ${(error as Error)?.message ?? error}`, {
      cause: error,
    });
  }
}
