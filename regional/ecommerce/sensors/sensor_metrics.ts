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

const RESCUES_METRIC = "bv_sensor_session_rescues_total";
const RESCUED_METRIC = "bv_sensor_session_rescued_readings_total";
const RESCUES_ACTIVE_METRIC = "bv_sensor_session_rescues_active";

/** Rescues of a down peer bridge's session started (`session_rescue.ts`), by the peer's client id. */
export const sensorSessionRescues = (metrics.registry.getSingleMetric(RESCUES_METRIC) as client.Counter | undefined) ??
  new client.Counter({
    name: RESCUES_METRIC,
    help: "Rescues started of a down peer sensor bridge's session (its readings drained by this bridge)",
    labelNames: ["peer"],
    registers: [metrics.registry],
  });

/** Readings (and dead letters) a rescue handled for a down peer: forwarded and acknowledged on its session. */
export const sensorSessionRescuedReadings =
  (metrics.registry.getSingleMetric(RESCUED_METRIC) as client.Counter | undefined) ??
    new client.Counter({
      name: RESCUED_METRIC,
      help: "Sensor messages handled on a down peer bridge's session by this bridge's rescue",
      labelNames: ["peer"],
      registers: [metrics.registry],
    });

/** 1 while this bridge holds a peer's session (a rescue is connected), else 0. */
export const sensorSessionRescuesActive =
  (metrics.registry.getSingleMetric(RESCUES_ACTIVE_METRIC) as client.Gauge | undefined) ??
    new client.Gauge({
      name: RESCUES_ACTIVE_METRIC,
      help: "1 while this sensor bridge holds a down peer's session, by the peer's client id",
      labelNames: ["peer"],
      registers: [metrics.registry],
    });
