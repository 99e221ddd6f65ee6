/**
 * @module
 * Calls between services over HTTP: every call has a deadline and carries the trace context.
 */
import { traceHeaders } from "../observability/mod.ts";
import { ProblemError } from "../contracts/problem.ts";

/** `fetch` with a timeout and W3C trace headers; a timeout or refused connection is a ProblemError. */
export async function callService(
  url: string | URL,
  init: RequestInit & { readonly timeoutMs: number },
): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(traceHeaders())) if (!headers.has(k)) headers.set(k, v);
  const signal = init.signal
    ? AbortSignal.any([init.signal, AbortSignal.timeout(init.timeoutMs)])
    : AbortSignal.timeout(init.timeoutMs);
  try {
    return await fetch(url, { ...init, headers, signal });
  } catch (error) {
    if ((error as Error).name === "TimeoutError") {
      throw new ProblemError(
        "COMMON.UPSTREAM_TIMEOUT",
        `Call to ${new URL(url).host} timed out after ${init.timeoutMs} ms`,
        {
          cause: error,
        },
      );
    }
    throw new ProblemError(
      "COMMON.UPSTREAM_UNAVAILABLE",
      `Call to ${new URL(url).host} failed: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}
