/**
 * @module
 * The inventory side of the sensor feed: consumes `iot.inventory.sensor.delta_received.v1` (group
 * `ecommerce-<region>.sensor-deltas`) and applies each delta once through `applyStockAdjustment`, which is
 * idempotent by message id and announces `stock.adjusted` through the outbox in the same transaction (the
 * snapshot cache and GraphQL follow from that event). A delta that can never apply (not an envelope, unknown
 * sku, stock would go negative) is dead-lettered at once with its reason; anything else (database down) is
 * thrown, so the event log retries it and dead-letters it only after its bounded attempts.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import { dlqRecordOf, dlqTopicOf, type EventLog, type IncomingRecord, type Sql } from "../../../shared/ports/mod.ts";
import { applyStockAdjustment } from "../inventory/mod.ts";

/** The `source` of every sensor adjustment in `inventory_adjustment`. */
export const SENSOR_ADJUSTMENT_SOURCE = "mqtt";
/**
 * Deliveries of a record that fails for a transient reason before it is dead-lettered: with the event
 * log's backoff (200 ms doubling to 5 s) about 25 s, enough to ride out a database failover.
 */
export const SENSOR_CONSUMER_ATTEMPTS_MAX = 10;

/** Problems that no retry can fix: the record is dead-lettered at once. */
const PERMANENT = new Set(["ECOMMERCE.PRODUCT_NOT_FOUND", "ECOMMERCE.STOCK_NEGATIVE", "COMMON.VALIDATION_FAILED"]);

/** What {@linkcode startSensorDeltaConsumer} needs. */
export interface SensorDeltaConsumerDeps {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  readonly nudgeOutbox: () => void;
  readonly region: string;
  /** Where a new group starts; "earliest" so a new region misses no delta. @default "earliest" */
  readonly from?: "earliest" | "latest";
}

/** Joins the group and applies deltas; `close()` lets the record in flight finish, commits and leaves. */
export async function startSensorDeltaConsumer(deps: SensorDeltaConsumerDeps): Promise<{ close(): Promise<void> }> {
  const topic = sensorDeltaReceived.eventType;
  await deps.eventLog.ensureTopics([{ name: topic, partitions: 3 }, { name: dlqTopicOf(topic), partitions: 3 }]);
  const subscription = await deps.eventLog.subscribe({
    groupId: `ecommerce-${deps.region}.sensor-deltas`,
    topics: [topic],
    from: deps.from ?? "earliest",
    maxAttempts: SENSOR_CONSUMER_ATTEMPTS_MAX,
    handler: async (record) => {
      try {
        if (await applySensorRecord(deps.sql, record)) deps.nudgeOutbox();
      } catch (error) {
        if (!isPermanent(error)) throw error;
        log.warn("sensor delta rejected", { key: record.key, offset: record.offset, error: String(error) });
        await deps.eventLog.publish(dlqTopicOf(topic), [dlqRecordOf(record, error, 1)]);
      }
    },
  });
  await subscription.ready;
  return { close: () => subscription.close() };
}

/** Applies one record; resolves with whether stock changed (false for a message id seen before). */
export async function applySensorRecord(sql: Sql, record: IncomingRecord): Promise<boolean> {
  const parsed = parseEnvelope(record.value);
  if (!parsed.ok) throw new ProblemError("COMMON.VALIDATION_FAILED", `Not a sensor delta event: ${parsed.reason}`);
  if (parsed.envelope.eventType !== sensorDeltaReceived.eventType) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `Expected "${sensorDeltaReceived.eventType}" but got "${parsed.envelope.eventType}"`,
    );
  }
  const { messageId, sku, delta, reason } = sensorDeltaReceived.payload.parse(parsed.envelope.payload);
  return await sql.transaction(async (tx) => {
    const [product] = await tx.query<{ id: string }>`select id::text as id from products where sku = ${sku}`;
    if (!product) {
      throw new ProblemError(
        "ECOMMERCE.PRODUCT_NOT_FOUND",
        `No product has sku "${sku}"; create it in the catalog or fix the sensor's topic`,
      );
    }
    const result = await applyStockAdjustment(tx, {
      productId: product.id,
      delta,
      reason,
      source: SENSOR_ADJUSTMENT_SOURCE,
      messageId,
    });
    return result.applied;
  });
}

function isPermanent(error: unknown): boolean {
  return error instanceof ProblemError && PERMANENT.has(error.code);
}
