/**
 * @module
 * The HTTP shell every BitVelocity process shares: trace context in, request metrics and access logs,
 * problem+json errors, `/healthz` (alive), `/readyz` (every dependency checked) and `/metrics`
 * (Prometheus text). Domain routes are mounted on the returned app.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { installProblemHandlers, JSON_BODY_BYTES_MAX } from "../http/mod.ts";
import { problemResponse } from "../http/problem_response.ts";
import { contextFromCarrier, log, metrics, withTraceContext } from "../observability/mod.ts";
import { type ReadinessCheck, runReadiness } from "./readiness.ts";

export interface ServiceAppOptions {
  /** For example `security-east`. */
  readonly name: string;
  readonly checks: Readonly<Record<string, ReadinessCheck>>;
  /** Per-check bound in `/readyz`. @default 1000 */
  readonly readinessTimeoutMs?: number;
  /** Largest request body accepted. @default 1 MiB */
  readonly bodyBytesMax?: number;
}

/** Paths that are probed often and would drown the access log. */
const QUIET_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

/** Creates the app with the shared middleware and operational endpoints. */
export function createServiceApp(options: ServiceAppOptions): Hono {
  const app = new Hono();
  const readinessTimeoutMs = options.readinessTimeoutMs ?? 1_000;
  let draining = false;

  app.use("*", async (c, next) => {
    const trace = contextFromCarrier({
      traceparent: c.req.header("traceparent"),
      "correlation-id": c.req.header("correlation-id") ?? c.req.header("x-correlation-id"),
    });
    await withTraceContext(trace, async () => {
      const started = performance.now();
      await next();
      // Hono parsed the path already; another URL parse per request is measurable on the ingress.
      const path = c.req.path;
      const route = c.req.routePath || "unmatched";
      const seconds = (performance.now() - started) / 1000;
      metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
      metrics.httpDuration.observe({ method: c.req.method, route }, seconds);
      c.res.headers.set("correlation-id", trace.correlationId);
      if (!QUIET_PATHS.has(path)) {
        log.info("request", {
          method: c.req.method,
          path,
          status: c.res.status,
          ms: Math.round(seconds * 1000 * 100) / 100,
        });
      }
    });
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: options.bodyBytesMax ?? JSON_BODY_BYTES_MAX,
      onError: () => problemResponse("COMMON.PAYLOAD_TOO_LARGE", "Request body exceeds the limit of 1 MiB"),
    }),
  );
  installProblemHandlers(app);

  app.get("/healthz", (c) => c.json({ status: "alive", service: options.name }));
  app.get("/readyz", async (c) => {
    if (draining) return c.json({ ready: false, service: options.name, draining: true }, 503);
    const report = await runReadiness(options.checks, readinessTimeoutMs);
    return c.json({ service: options.name, ...report }, report.ready ? 200 : 503);
  });
  app.get(
    "/metrics",
    async () => new Response(await metrics.render(), { headers: { "content-type": metrics.contentType } }),
  );
  // The lifecycle flips readiness to red first so balancers stop sending before the server drains.
  drainHooks.set(app, () => {
    draining = true;
  });
  return app;
}

const drainHooks = new WeakMap<Hono, () => void>();

/** Marks the app as draining: `/readyz` answers 503 from now on. */
export function markDraining(app: Hono): void {
  drainHooks.get(app)?.();
}
