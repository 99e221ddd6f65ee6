/** @module The error by which a consumer says "not my input's fault: deliver it again later". */

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
 * Runs `effect` and rethrows any failure as a {@linkcode RetryLaterError} (an error that already is one, or
 * is one of `passThrough`'s, is rethrown as it is). For the part of a handler that runs after its record was
 * validated, where a failure can only be the effect's.
 */
export async function retryLaterOnFailure<T>(
  what: string,
  effect: () => Promise<T>,
  passThrough: (error: unknown) => boolean = () => false,
): Promise<T> {
  try {
    return await effect();
  } catch (error) {
    if (error instanceof RetryLaterError || passThrough(error)) throw error;
    throw new RetryLaterError(`${what} failed; delivered again later: ${(error as Error)?.message ?? error}`, {
      cause: error,
    });
  }
}
