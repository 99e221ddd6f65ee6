/**
 * @module
 * Problem responses made by the edge itself (RFC 9457 `application/problem+json` with a stable code). The
 * edge cannot use `shared/http/problem_response.ts`, which reads the trace context from node-only storage.
 */
import { PROBLEM_CONTENT_TYPE, type ProblemCode, problemOf } from "../shared/contracts/problem.ts";

/** A problem response for `code`, with extra headers such as `Retry-After` or `WWW-Authenticate`. */
export function edgeProblem(
  code: ProblemCode,
  detail: string,
  headers?: Readonly<Record<string, string>>,
): Response {
  const body = problemOf(code, detail);
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: headers === undefined
      ? { "content-type": PROBLEM_CONTENT_TYPE }
      : { "content-type": PROBLEM_CONTENT_TYPE, ...headers },
  });
}
