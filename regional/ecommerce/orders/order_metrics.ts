/** @module Order metrics (seed 003 section 10), registered in the process registry served at `/metrics`. */
import client from "prom-client";
import { metrics } from "../../../shared/observability/mod.ts";

/** Orders placed, by outcome: `reserved` (answered 201) or `canceled` (no stock, or reservation failed). */
export const ordersCreated = new client.Counter({
  name: "bv_orders_created_total",
  help: "Orders placed, by outcome (reserved or canceled)",
  labelNames: ["outcome"] as const,
  registers: [metrics.registry],
});

/** Time from the request to the answer of `POST /api/v1/orders` (pricing, two transactions, the reservation). */
export const orderCreationLatency = new client.Histogram({
  name: "bv_order_creation_latency_seconds",
  help: "Latency of placing an order, by outcome",
  labelNames: ["outcome"] as const,
  // The seed's target is p95 < 200 ms; buckets are dense around it.
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5, 5],
  registers: [metrics.registry],
});
