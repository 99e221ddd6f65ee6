/**
 * @module
 * MQTT-bus metrics, registered in the process registry served at `/metrics`, by client id (one per bus; a
 * process has a handful, named after what it runs).
 */
import client from "prom-client";
import { metrics } from "../../observability/mod.ts";

const HANDLER_FAILURES_METRIC = "bv_mqtt_handler_failures_total";
const FORCED_RECONNECTS_METRIC = "bv_mqtt_forced_reconnects_total";

/**
 * Messages whose handler failed or that found no handler, by outcome: `unacknowledged` (QoS 1 on a persistent
 * session: delivered again after a reconnect), `dropped` (QoS 0, or a clean session, which cannot have it sent
 * again) or `unmatched` (no handler after the hold: the broker's session holds a subscription this process does
 * not handle; acknowledged unhandled, with no reconnect, since it would only come back first).
 */
export const mqttHandlerFailures =
  (metrics.registry.getSingleMetric(HANDLER_FAILURES_METRIC) as client.Counter<"client_id" | "outcome"> | undefined) ??
    new client.Counter({
      name: HANDLER_FAILURES_METRIC,
      help: "MQTT messages whose handler failed or that no handler matched, by client id and outcome " +
        "(unacknowledged, dropped or unmatched)",
      labelNames: ["client_id", "outcome"] as const,
      registers: [metrics.registry],
    });

/** Connections the bus dropped itself so the broker delivers again the QoS 1 messages whose handler failed. */
export const mqttForcedReconnects =
  (metrics.registry.getSingleMetric(FORCED_RECONNECTS_METRIC) as client.Counter<"client_id"> | undefined) ??
    new client.Counter({
      name: FORCED_RECONNECTS_METRIC,
      help: "MQTT reconnects forced after handler failures, so the broker delivers the messages again",
      labelNames: ["client_id"] as const,
      registers: [metrics.registry],
    });
