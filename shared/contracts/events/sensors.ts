/**
 * @module
 * IoT inventory-sensor event types (issue 4, item 4): a stock delta reported by a sensor over MQTT
 * (`iot/inventory/{sku}/delta`), forwarded to Kafka by the sensor bridge and applied once by inventory.
 * Rejected deltas go to the topic's dead-letter topic (`<topic>.dlq`) with the reason in `x-bv-error`.
 */
import { z } from "zod";
import { defineEvent } from "../envelope.ts";

/** Largest |delta| one sensor message may carry. */
export const SENSOR_DELTA_ABS_MAX = 10_000;
/** Longest `reason` a sensor may send. */
export const SENSOR_REASON_CHARS_MAX = 64;
/** Longest sku (one MQTT topic level), as the catalog allows. */
export const SENSOR_SKU_CHARS_MAX = 64;

/** A sku as the catalog accepts it; it is also one MQTT topic level, so it never holds `/`, `+` or `#`. */
export const sensorSkuSchema = z.string().regex(
  new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${SENSOR_SKU_CHARS_MAX - 1}}$`),
  `Use 1 to ${SENSOR_SKU_CHARS_MAX} letters, digits, ".", "_" or "-", starting with a letter or digit`,
);

/** Text PostgreSQL can store (no NUL) and logs can show: no control characters, as the bridge already ensures. */
const printable = (max: number) =>
  z.string().min(1).max(max).refine((text) => !/\p{Cc}/u.test(text), "must not contain control characters");

export const sensorDeltaReceived = defineEvent({
  eventType: "iot.inventory.sensor.delta_received.v1",
  schemaVersion: "1.0",
  payload: z.object({
    /** The idempotency id of the sensor message: inventory applies one message id once. */
    messageId: printable(200),
    sku: sensorSkuSchema,
    delta: z.number().int().min(-SENSOR_DELTA_ABS_MAX).max(SENSOR_DELTA_ABS_MAX).refine((d) => d !== 0, {
      message: "must not be 0",
    }),
    reason: printable(SENSOR_REASON_CHARS_MAX),
    /** When the bridge first received it (a redelivery carries a later time but the same messageId). */
    receivedAt: z.iso.datetime({ offset: true }),
  }),
  partitionKeyOf: (p) => p.sku,
});
