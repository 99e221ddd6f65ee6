/**
 * @module
 * Prometheus metrics for `/metrics`: one registry per process (prom-client), with the HTTP and dependency
 * metrics every service shares. Services add their own with `metrics.registry`.
 */
import client from "prom-client";

const registry = new client.Registry();

const httpRequests = new client.Counter({
  name: "bv_http_requests_total",
  help: "HTTP requests answered, by method, route and status",
  labelNames: ["method", "route", "status"] as const,
  registers: [registry],
});

const httpDuration = new client.Histogram({
  name: "bv_http_request_duration_seconds",
  help: "HTTP request latency, by method and route",
  labelNames: ["method", "route"] as const,
  // Fine buckets below 10 ms: the platform's SLOs are in single-digit milliseconds.
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

const dependencyUp = new client.Gauge({
  name: "bv_dependency_up",
  help: "1 when the last readiness check of a dependency passed",
  labelNames: ["dependency"] as const,
  registers: [registry],
});

export const metrics = Object.freeze({
  registry,
  httpRequests,
  httpDuration,
  dependencyUp,
  /** The Prometheus text exposition of every metric of this process. */
  render: (): Promise<string> => registry.metrics(),
  contentType: registry.contentType,
});
