/**
 * @module
 * Payment metrics on the process registry (`/metrics`): attempts by path and outcome, and the circuit state
 * of the SOAP path.
 */
import client from "prom-client";
import { metrics } from "../../../shared/observability/mod.ts";

export type PaymentVia = "soap" | "rest-fallback";
export type AttemptOutcome = "approved" | "declined" | "failed" | "timeout" | "rejected";
export type CircuitStateName = "closed" | "open" | "half-open";

const attempts = new client.Counter({
  name: "bv_payment_attempts_total",
  help: "Calls to the payment gateway, by path (soap, rest-fallback) and outcome",
  labelNames: ["via", "outcome"] as const,
  registers: [metrics.registry],
});

const circuitState = new client.Gauge({
  name: "bv_payment_circuit_state",
  help: "Circuit breaker of the SOAP payment path: 0 closed, 1 open, 2 half-open",
  registers: [metrics.registry],
});

const stateValue: Readonly<Record<CircuitStateName, number>> = { closed: 0, open: 1, "half-open": 2 };

export const paymentMetrics = Object.freeze({
  attempt(via: PaymentVia, outcome: AttemptOutcome): void {
    attempts.inc({ via, outcome });
  },
  circuit(state: CircuitStateName): void {
    circuitState.set(stateValue[state]);
  },
});
