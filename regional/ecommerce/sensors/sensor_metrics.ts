/**
 * @module
 * Sensor metrics on the process registry (`/metrics`): readings the ledger already held, counted where a batch is
 * applied (the writer region's process).
 */
import client from "prom-client";
import { metrics } from "../../../shared/observability/mod.ts";

const DUPLICATES_METRIC = "bv_sensor_delta_duplicates_total";

/**
 * Sensor deltas skipped because their message id was already applied: a redelivery (MQTT or Kafka), or two readings
 * that made the same id. Not an error, but a rate that grows says a device re-sends too much or ids collide.
 */
export const sensorDeltaDuplicates =
  (metrics.registry.getSingleMetric(DUPLICATES_METRIC) as client.Counter | undefined) ??
    new client.Counter({
      name: DUPLICATES_METRIC,
      help: "Sensor deltas skipped because their message id was already applied (redeliveries, or colliding ids)",
      registers: [metrics.registry],
    });
