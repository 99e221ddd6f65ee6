/**
 * @module
 * The edge's route table: its own `/healthz`, `/readyz` (ready while any region is healthy) and `/metrics`;
 * everything else goes through the request pipeline (`request_pipeline.ts`) with a trace continued or
 * started here (`trace.ts`). A failure nothing else answered is a problem+json 500 here, logged with its
 * trace; without this, Hono answered a plain-text 500.
 */
import { Hono } from "hono";
import { ProblemError } from "../shared/contracts/problem.ts";
import type { EdgeLog } from "./edge_options.ts";
import { edgeProblem } from "./edge_problem.ts";
import type { EdgeHandler } from "./request_pipeline.ts";
import type { RegionHealth } from "./region_router.ts";
import { type EdgeTrace, edgeTraceOf, withTraceHeaders } from "./trace.ts";

export interface EdgeAppDeps {
  /** Each region's health and latency EWMA, in preference order. */
  readonly health: () => readonly RegionHealth[];
  /** The Prometheus text of `/metrics`. */
  readonly metricsText: () => string;
  readonly handle: EdgeHandler;
  /** Where failures nothing else answered are logged. */
  readonly log: EdgeLog;
}

export function createEdgeApp(deps: EdgeAppDeps): Hono {
  const app = new Hono();
  const failed = (error: unknown, request: Request, path: string, trace: EdgeTrace) =>
    withTraceHeaders(failureAnswer(error, request.method, path, trace, deps.log), trace);
  app.get("/healthz", (c) => c.json({ status: "alive", service: "edge" }));
  app.get("/readyz", (c) => {
    const regions = deps.health();
    const ready = regions.some((s) => s.healthy);
    return c.json({ service: "edge", ready, regions }, ready ? 200 : 503);
  });
  app.get(
    "/metrics",
    () => new Response(deps.metricsText(), { headers: { "content-type": "text/plain; version=0.0.4" } }),
  );
  // Hono returns a handler's synchronous Response as is: a cache hit never waits on the event loop.
  app.all("*", (c) => {
    const trace = edgeTraceOf(c.req.raw.headers);
    // Caught here, where the trace is known, so the answer and the log line carry the one the region saw; and
    // a rejection of any value: Hono gives `onError` only Errors and leaves the rest to the server's plain 500.
    try {
      const answer = deps.handle(c.req.raw, c.req.path, c.env, trace);
      return answer instanceof Promise ? answer.catch((error) => failed(error, c.req.raw, c.req.path, trace)) : answer;
    } catch (error) {
      return failed(error, c.req.raw, c.req.path, trace);
    }
  });
  // Whatever else escapes (the edge's own routes): the same answer, under a trace of its own.
  app.onError((error, c) => failed(error, c.req.raw, c.req.path, edgeTraceOf(c.req.raw.headers)));
  return app;
}

/**
 * The answer to a failure: a `ProblemError`'s own problem, else a 500 whose detail says nothing of the error
 * (its message and stack go to the log only). The path is logged without its query, which may hold a token.
 */
function failureAnswer(error: unknown, method: string, path: string, trace: EdgeTrace, log: EdgeLog): Response {
  if (error instanceof ProblemError) return edgeProblem(error.code, error.message, error.headers);
  log.error("unhandled error at the edge", {
    method,
    path,
    error: String(error),
    stack: (error as Error | undefined)?.stack,
    traceId: trace.traceparent.slice(3, 35),
    correlationId: trace.correlationId,
  });
  return edgeProblem(
    "COMMON.INTERNAL",
    "The edge failed to answer this request; the failure was logged under this answer's Correlation-Id",
  );
}
