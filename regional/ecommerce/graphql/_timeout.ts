/** @module A bound on one outgoing call: the caller stops waiting, the call itself is not cancelled. */
import { ProblemError } from "../../../shared/contracts/problem.ts";

/** Resolves like `work`, or rejects with `COMMON.UPSTREAM_TIMEOUT` after `timeoutMs`. */
export async function withTimeout<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new ProblemError("COMMON.UPSTREAM_TIMEOUT", `Reading ${what} took longer than ${timeoutMs} ms; retry`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
