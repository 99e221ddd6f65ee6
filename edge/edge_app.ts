/**
 * @module
 * The edge's route table: its own `/healthz`, `/readyz` (ready while any region is healthy) and `/metrics`;
 * everything else goes through the request pipeline (`request_pipeline.ts`) with a trace continued or
 * started here (`trace.ts`).
 */
import { Hono } from "hono";
import type { EdgeHandler } from "./request_pipeline.ts";
import type { RegionHealth } from "./region_router.ts";
import { edgeTraceOf } from "./trace.ts";

export interface EdgeAppDeps {
  /** Each region's health and latency EWMA, in preference order. */
  readonly health: () => readonly RegionHealth[];
  /** The Prometheus text of `/metrics`. */
  readonly metricsText: () => string;
  readonly handle: EdgeHandler;
}

export function createEdgeApp(deps: EdgeAppDeps): Hono {
  const app = new Hono();
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
  app.all("*", (c) => deps.handle(c.req.raw, c.req.path, c.env, edgeTraceOf(c.req.raw.headers)));
  return app;
}
