/**
 * @module
 * The HTTP shell every BitVelocity process shares: trace context in, request metrics and access logs,
 * problem+json errors, `/healthz` (alive), `/readyz` (every dependency checked) and `/metrics`
 * (Prometheus text). Domain routes are mounted on the returned app.
 *
 * Stopping has two steps the lifecycle drives: `markDraining` turns `/readyz` red while everything is still
 * served, and `markShuttingDown` aborts the app's shutdown signal, which long-lived responses (SSE) read
 * through `shutdownSignalOf` and end on, so the server's drain is not held up by streams that never end.
 */
import { type Context, Hono } from "hono";
import { boundRequestBodies, installProblemHandlers } from "../http/mod.ts";
import { contextFromCarrier, log, metrics, withTraceContext } from "../observability/mod.ts";
import { type ReadinessCheck, runReadiness } from "./readiness.ts";

export interface ServiceAppOptions {
  /** For example `security-east`. */
  readonly name: string;
  readonly checks: Readonly<Record<string, ReadinessCheck>>;
  /** Per-check bound in `/readyz`. @default 1000 */
  readonly readinessTimeoutMs?: number;
  /** Largest request body accepted, counted as it arrives. @default JSON_BODY_BYTES_MAX (1 MiB) */
  readonly bodyBytesMax?: number;
  /** Longest wait for a request body's next chunk (then 408). @default REQUEST_BODY_IDLE_TIMEOUT_MS (10 s) */
  readonly bodyIdleTimeoutMs?: number;
  /**
   * Set by an app whose routes only stream request bodies on through `proxyRequest` (the ingress), which applies the
   * same bounds as it forwards: the app then leaves bodies alone instead of wrapping each one a second time.
   * @default false
   */
  readonly proxiesBodies?: boolean;
}

/** Paths that are probed often and would drown the access log. */
const QUIET_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

/** The methods of RFC 9110 and PATCH (RFC 5789), as spelled there: the only method labels a metric gets. */
const METHOD_LABELS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
]);

/**
 * The method as a metric label: a standard method as is, anything else `OTHER`. A method is any token the
 * client likes, and every distinct label value is a new series kept for the life of the process.
 */
export function methodLabel(method: string): string {
  return METHOD_LABELS.has(method) ? method : "OTHER";
}

/** Creates the app with the shared middleware and operational endpoints. */
export function createServiceApp(options: ServiceAppOptions): Hono {
  const app = new Hono();
  const readinessTimeoutMs = options.readinessTimeoutMs ?? 1_000;
  let draining = false;
  const shutdown = new AbortController();

  app.use("*", async (c, next) => {
    shutdownSignals.set(c, shutdown.signal);
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
      const method = methodLabel(c.req.method);
      metrics.httpRequests.inc({ method, route, status: String(c.res.status) });
      metrics.httpDuration.observe({ method, route }, seconds);
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
  // Bounded as the bytes arrive, not buffered first (Hono's bodyLimit read a chunked body whole, with no deadline,
  // before any handler ran: a client sending a byte a second held the connection as long as it liked).
  if (!options.proxiesBodies) {
    app.use("*", boundRequestBodies({ bytesMax: options.bodyBytesMax, idleTimeoutMs: options.bodyIdleTimeoutMs }));
  }
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
  stopHooks.set(app, {
    markDraining: () => {
      draining = true;
    },
    markShuttingDown: () => {
      draining = true;
      shutdown.abort();
    },
  });
  return app;
}

const stopHooks = new WeakMap<Hono, { markDraining(): void; markShuttingDown(): void }>();
/** One context per request, shared by the routes mounted on the app, so a sub-app's handler finds it too. */
const shutdownSignals = new WeakMap<Context, AbortSignal>();
/** The signal of a request served outside a service app (a module's own tests): nothing aborts it. */
const NEVER = new AbortController().signal;

/** Marks the app as draining: `/readyz` answers 503 from now on; everything else is still served. */
export function markDraining(app: Hono): void {
  stopHooks.get(app)?.markDraining();
}

/** Aborts the app's shutdown signal (its server is about to stop): long-lived responses end now. */
export function markShuttingDown(app: Hono): void {
  stopHooks.get(app)?.markShuttingDown();
}

/**
 * Aborted when the server of the service app handling `c` is about to shut down. A response that would
 * otherwise stay open (an SSE stream) must end on it, and a new one should be refused: the server's
 * drain waits for every open response. Outside a service app it never aborts.
 */
export function shutdownSignalOf(c: Context): AbortSignal {
  return shutdownSignals.get(c) ?? NEVER;
}
