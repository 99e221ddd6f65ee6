/**
 * @module
 * The one place where errors become HTTP responses: RFC 9457 `application/problem+json` with a stable code.
 * A database failure that a retry may pass (a statement timeout, a lock not available, a deadlock…) is a 503
 * `COMMON.UPSTREAM_UNAVAILABLE` with Retry-After (`shared/ports/sql_problem.ts`; a deadlock is logged as an
 * error with its stack, for it is a lock-order bug). Anything else that is not a
 * {@linkcode ProblemError} is logged and answered as `COMMON.INTERNAL` without leaking its message.
 */
import type { Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { PROBLEM_CONTENT_TYPE, type ProblemCode, ProblemError, problemOf } from "../contracts/problem.ts";
import { currentTraceId, log } from "../observability/mod.ts";
import { logEntryOfSqlFailure, problemOfSqlFailure } from "../ports/sql_problem.ts";

/** Renders a problem response for `code`. */
export function problemResponse(
  code: ProblemCode,
  detail: string,
  options?: { readonly instance?: string; readonly headers?: Readonly<Record<string, string>> },
): Response {
  const body = problemOf(code, detail, { instance: options?.instance, traceId: currentTraceId() });
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...options?.headers },
  });
}

/** Turns any thrown value into a problem response. */
export function errorToResponse(error: unknown, instance?: string): Response {
  if (error instanceof ProblemError) {
    const body = problemOf(error.code, error.message, {
      instance,
      traceId: currentTraceId(),
      errors: error.errors,
    });
    return new Response(JSON.stringify(body), {
      status: body.status,
      headers: { "content-type": PROBLEM_CONTENT_TYPE, ...error.headers },
    });
  }
  if (error instanceof HTTPException) {
    // Hono raises these for framework-level failures (for example the body-limit middleware).
    const code: ProblemCode = error.status === 413
      ? "COMMON.PAYLOAD_TOO_LARGE"
      : error.status === 401
      ? "AUTH.UNAUTHENTICATED"
      : "COMMON.VALIDATION_FAILED";
    return problemResponse(code, error.message || "The request was rejected", { instance });
  }
  const unavailable = problemOfSqlFailure(error);
  if (unavailable) {
    const { level, fields } = logEntryOfSqlFailure(error);
    log[level]("a database failure that a retry may pass answered 503", fields);
    return errorToResponse(unavailable, instance);
  }
  log.error("unhandled error", { error: String(error), stack: (error as Error)?.stack });
  return problemResponse("COMMON.INTERNAL", "An unexpected error occurred; it has been logged", { instance });
}

/** Installs the not-found and error handlers so every failure of `app` answers problem+json. */
export function installProblemHandlers(app: Hono): void {
  app.notFound((c: Context) =>
    problemResponse("COMMON.NOT_FOUND", `No route for ${c.req.method} ${new URL(c.req.url).pathname}`, {
      instance: new URL(c.req.url).pathname,
    })
  );
  app.onError((error, c) => errorToResponse(error, new URL(c.req.url).pathname));
}
