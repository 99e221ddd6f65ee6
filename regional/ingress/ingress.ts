/**
 * @module
 * A region's single HTTP entry: routes each request by path ({@linkcode serviceForPath}) to the
 * deployable that owns it, streaming bodies both ways. It is ready when every deployable is ready.
 */
import type { Hono } from "hono";
import { type ServiceName, SERVICES } from "../../shared/config/config.ts";
import { problemResponse, proxyRequest } from "../../shared/http/mod.ts";
import { isWebSocketUpgrade, proxyWebSocket } from "../../shared/http/websocket_proxy.ts";
import { traceHeaders } from "../../shared/observability/mod.ts";
import { callService, createServiceApp, type ReadinessCheck } from "../../shared/runtime/mod.ts";
import { serviceForPath } from "./routes.ts";

export interface IngressOptions {
  readonly name: string;
  readonly serviceUrls: Readonly<Record<ServiceName, string>>;
  /** Bound on waiting for a deployable's response headers. */
  readonly upstreamTimeoutMs: number;
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
  const app = createServiceApp({ name: options.name, checks, readinessTimeoutMs: 2_000 });
  app.all("*", (c) => {
    // Hono has parsed the path already; a second URL parse per proxied request is measurable here.
    const pathname = c.req.path;
    const service = serviceForPath(pathname);
    if (!service) return problemResponse("COMMON.NOT_FOUND", `No route for ${c.req.method} ${pathname}`);
    if (isWebSocketUpgrade(c.req.raw)) {
      return proxyWebSocket(c.req.raw, {
        upstream: options.serviceUrls[service].replace(/^http/, "ws"),
        connectTimeoutMs: options.upstreamTimeoutMs,
        setHeaders: traceHeaders(),
      });
    }
    return proxyRequest(c.req.raw, {
      upstream: options.serviceUrls[service],
      headersTimeoutMs: options.upstreamTimeoutMs,
      setHeaders: traceHeaders(),
    });
  });
  return app;
}

/** The URLs of a region's deployables on this host. */
export function serviceUrlsOf(host: string, ports: Readonly<Record<ServiceName, number>>): Record<ServiceName, string> {
  return Object.fromEntries(SERVICES.map((s) => [s, `http://${host}:${ports[s]}`])) as Record<ServiceName, string>;
}
