/**
 * @module
 * A region's single HTTP entry: routes each request by path ({@linkcode serviceForPath}) to the
 * deployable that owns it, streaming bodies both ways. It is ready when every deployable is ready. A request's
 * copies of the platform's identity headers are dropped (`INGRESS_DROPPED_HEADERS`; the edge's and a replica's
 * own headers pass, see `shared/http/internal_headers.ts`) and the peer is appended to `X-Forwarded-For`.
 */
import type { Hono } from "hono";
import { type ServiceName, SERVICES } from "../../shared/config/config.ts";
import {
  endingOnAbort,
  INGRESS_DROPPED_HEADERS,
  problemResponse,
  proxyRequest,
  requestBodyBoundsOf,
} from "../../shared/http/mod.ts";
import { isWebSocketUpgrade, proxyWebSocket } from "../../shared/http/websocket_proxy.ts";
import { traceHeaders } from "../../shared/observability/mod.ts";
import { callService, createServiceApp, type ReadinessCheck, shutdownSignalOf } from "../../shared/runtime/mod.ts";
import { serviceForPath } from "./routes.ts";

export interface IngressOptions {
  readonly name: string;
  readonly serviceUrls: Readonly<Record<ServiceName, string>>;
  /**
   * Bound on each wait on a deployable (to connect, to take the body, for its response headers); time spent waiting
   * on the client's body is bounded by `bodyIdleTimeoutMs` instead.
   */
  readonly upstreamTimeoutMs: number;
  /** Longest wait for a request body's next chunk (then 408). @default REQUEST_BODY_IDLE_TIMEOUT_MS (10 s) */
  readonly bodyIdleTimeoutMs?: number;
  /** Largest request body forwarded, counted as it streams (then 413). @default JSON_BODY_BYTES_MAX (1 MiB) */
  readonly bodyBytesMax?: number;
}

export function createIngressApp(options: IngressOptions): Hono {
  const checks: Record<string, ReadinessCheck> = {};
  for (const service of SERVICES) {
    checks[service] = async (timeoutMs) => {
      const response = await callService(`${options.serviceUrls[service]}/readyz`, { timeoutMs });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`${service} /readyz answered ${response.status}`);
    };
  }
  const body = requestBodyBoundsOf({ bytesMax: options.bodyBytesMax, idleTimeoutMs: options.bodyIdleTimeoutMs });
  // Bodies are bounded by the proxy step as they stream to the deployable, not buffered or wrapped twice here.
  const app = createServiceApp({ name: options.name, checks, readinessTimeoutMs: 2_000, proxiesBodies: true });
  app.all("*", async (c) => {
    // Hono has parsed the path already; a second URL parse per proxied request is measurable here.
    const pathname = c.req.path;
    const service = serviceForPath(pathname);
    if (!service) return problemResponse("COMMON.NOT_FOUND", `No route for ${c.req.method} ${pathname}`);
    const clientAddress = remoteAddressOf(c.env);
    if (isWebSocketUpgrade(c.req.raw)) {
      // The WebSocket proxy forwards an allow-list of handshake headers: no internal header gets through it.
      return proxyWebSocket(c.req.raw, {
        upstream: options.serviceUrls[service].replace(/^http/, "ws"),
        connectTimeoutMs: options.upstreamTimeoutMs,
        setHeaders: traceHeaders(),
        clientAddress,
      });
    }
    const response = await proxyRequest(c.req.raw, {
      upstream: options.serviceUrls[service],
      headersTimeoutMs: options.upstreamTimeoutMs,
      bodyIdleTimeoutMs: body.idleTimeoutMs,
      bodyBytesMax: body.bytesMax,
      setHeaders: traceHeaders(),
      dropHeaders: INGRESS_DROPPED_HEADERS,
      clientAddress,
    });
    // A proxied event stream (the edges' invalidation feed, /sse/orders) ends when this ingress begins to stop:
    // its drain would wait on it until the grace ran out.
    return endingOnAbort(response, shutdownSignalOf(c));
  });
  return app;
}

/** The peer's address from what `Deno.serve` hands the app as its env (`ServeHandlerInfo`); none in `app.request`. */
function remoteAddressOf(env: unknown): string | undefined {
  const hostname = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr?.hostname;
  return typeof hostname === "string" ? hostname : undefined;
}

/** The URLs of a region's deployables on this host. */
export function serviceUrlsOf(host: string, ports: Readonly<Record<ServiceName, number>>): Record<ServiceName, string> {
  return Object.fromEntries(SERVICES.map((s) => [s, `http://${host}:${ports[s]}`])) as Record<ServiceName, string>;
}
