/**
 * @module
 * The edge worker: a Hono app on web-standard APIs only (fetch, Headers, streams, Web Crypto), so it could
 * run on Cloudflare Workers; locally Deno serves it on port 8080. It sends each request to a healthy
 * region: the client's hint (`x-bv-region`) when that region is healthy, else the first healthy region in
 * preference order. Regions are probed on `/readyz`; idempotent requests that fail to connect are retried
 * once on the next healthy region.
 */
import { Hono } from "hono";
import { PROBLEM_CONTENT_TYPE, problemOf } from "../shared/contracts/problem.ts";
import { PROXY_ERROR_HEADER, proxyRequest } from "../shared/http/proxy.ts";

export interface EdgeRegion {
  readonly name: string;
  /** The region's ingress, for example `http://127.0.0.1:8081`. */
  readonly url: string;
}

export interface EdgeOptions {
  /** In preference order: the first healthy one serves requests without a usable hint. */
  readonly regions: readonly EdgeRegion[];
  /** @default 2000 */
  readonly healthIntervalMs?: number;
  /** Bound on one health probe. @default 1000 */
  readonly healthTimeoutMs?: number;
  /** Bound on waiting for a region's response headers. @default 5000 */
  readonly upstreamTimeoutMs?: number;
  readonly fetch?: typeof fetch;
}

interface RegionState {
  readonly region: EdgeRegion;
  healthy: boolean;
  latencyMs: number;
  lastError?: string;
}

export interface Edge {
  readonly app: Hono;
  /** Probes every region once. */
  checkHealth(): Promise<void>;
  /** Starts periodic probes (after one immediate probe). */
  start(): Promise<void>;
  stop(): void;
  health(): readonly { name: string; healthy: boolean; latencyMs: number; lastError?: string }[];
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

function problem(code: "COMMON.UPSTREAM_UNAVAILABLE", detail: string): Response {
  return new Response(JSON.stringify(problemOf(code, detail)), {
    status: 503,
    headers: { "content-type": PROBLEM_CONTENT_TYPE },
  });
}

export function createEdge(options: EdgeOptions): Edge {
  const fetchFn = options.fetch ?? fetch;
  const healthTimeoutMs = options.healthTimeoutMs ?? 1_000;
  const upstreamTimeoutMs = options.upstreamTimeoutMs ?? 5_000;
  // Unknown until probed: optimistic, so the first request after start is not refused.
  const states: RegionState[] = options.regions.map((region) => ({ region, healthy: true, latencyMs: 0 }));
  const counters = { requests: 0, failovers: 0, noRegion: 0 };
  let timer: ReturnType<typeof setInterval> | undefined;

  async function probe(state: RegionState): Promise<void> {
    const started = performance.now();
    try {
      const response = await fetchFn(`${state.region.url}/readyz`, { signal: AbortSignal.timeout(healthTimeoutMs) });
      await response.body?.cancel();
      state.healthy = response.ok;
      state.lastError = response.ok ? undefined : `readyz answered ${response.status}`;
    } catch (error) {
      state.healthy = false;
      state.lastError = (error as Error).message;
    }
    state.latencyMs = Math.round(performance.now() - started);
  }

  function candidates(hint: string | undefined): RegionState[] {
    const healthy = states.filter((s) => s.healthy);
    const hinted = healthy.find((s) => s.region.name === hint);
    return hinted ? [hinted, ...healthy.filter((s) => s !== hinted)] : healthy;
  }

  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "alive", service: "edge" }));
  app.get("/readyz", (c) => {
    const ready = states.some((s) => s.healthy);
    return c.json({ service: "edge", ready, regions: edge.health() }, ready ? 200 : 503);
  });
  app.get("/metrics", () => {
    const lines = [
      "# TYPE bv_edge_requests_total counter",
      `bv_edge_requests_total ${counters.requests}`,
      "# TYPE bv_edge_failovers_total counter",
      `bv_edge_failovers_total ${counters.failovers}`,
      "# TYPE bv_edge_no_region_total counter",
      `bv_edge_no_region_total ${counters.noRegion}`,
      "# TYPE bv_edge_region_healthy gauge",
      ...states.map((s) => `bv_edge_region_healthy{region="${s.region.name}"} ${s.healthy ? 1 : 0}`),
    ];
    return new Response(lines.join("\n") + "\n", { headers: { "content-type": "text/plain; version=0.0.4" } });
  });
  app.all("*", async (c) => {
    counters.requests++;
    const order = candidates(c.req.header("x-bv-region"));
    if (order.length === 0) {
      counters.noRegion++;
      return problem("COMMON.UPSTREAM_UNAVAILABLE", "No region is healthy; try again shortly");
    }
    // Only requests without a body and with idempotent semantics can be sent twice safely.
    const retryable = IDEMPOTENT.has(c.req.method) && c.req.raw.body === null;
    const attempts = retryable ? order.slice(0, 2) : order.slice(0, 1);
    let response: Response | undefined;
    for (const [i, state] of attempts.entries()) {
      if (i > 0) counters.failovers++;
      response = await proxyRequest(c.req.raw, {
        upstream: state.region.url,
        headersTimeoutMs: upstreamTimeoutMs,
        fetch: fetchFn,
        setHeaders: { "x-bv-edge-region": state.region.name },
      });
      const unreachable = response.headers.get(PROXY_ERROR_HEADER) === "unreachable";
      if (!unreachable) {
        const headers = new Headers(response.headers);
        headers.set("x-bv-region", state.region.name);
        return new Response(response.body, { status: response.status, headers });
      }
      state.healthy = false;
    }
    return response!;
  });

  const edge: Edge = {
    app,
    checkHealth: async () => {
      await Promise.all(states.map(probe));
    },
    start: async () => {
      await edge.checkHealth();
      timer ??= setInterval(() => void edge.checkHealth(), options.healthIntervalMs ?? 2_000);
    },
    stop: () => {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
    health: () =>
      states.map((s) => ({ name: s.region.name, healthy: s.healthy, latencyMs: s.latencyMs, lastError: s.lastError })),
  };
  return edge;
}
