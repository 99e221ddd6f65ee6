/**
 * @module
 * The inventory side of the sensor feed: consumes `iot.inventory.sensor.delta_received.v1` (group
 * `ecommerce-<region>.sensor-deltas`) and applies the deltas of a Kafka batch in one transaction
 * (`apply_sensor_batch.ts`: idempotent by message id, one `stock.adjusted` per product per batch through the
 * outbox). A delta that can never apply (not an envelope, unknown sku, stock would go negative) is
 * dead-lettered with its reason and the rest of its batch applies; anything else (database down) is thrown,
 * so the event log delivers the batch again and dead-letters it only after its bounded attempts. On an event
 * log without batches (the in-process one) each record is a batch of one.
 */
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { log } from "../../../shared/observability/mod.ts";
import { dlqRecordOf, dlqTopicOf, type EventLog, type IncomingRecord, type Sql } from "../../../shared/ports/mod.ts";
import { applySensorBatch, SENSOR_ADJUSTMENT_SOURCE, type SensorBatchOutcome } from "./apply_sensor_batch.ts";

export { SENSOR_ADJUSTMENT_SOURCE };
/**
 * Deliveries of a batch that fails for a transient reason before it is dead-lettered: with the event
 * log's backoff (200 ms doubling to 5 s) about 25 s, enough to ride out a database failover.
 */
export const SENSOR_CONSUMER_ATTEMPTS_MAX = 10;
/**
 * Records applied per transaction at most. Larger batches amortise the fixed statements further but hold
 * the stock rows' locks longer (an order's reservation waits for them); 500 keeps one batch to a few ms.
 */
export const SENSOR_CONSUMER_BATCH_MAX = 500;
/**
 * Partitions applied at once (the topic has 3). Records are keyed by sku, so two partitions never lock the
 * same stock row; a batch's time is mostly waiting on the database, which this overlaps.
 */
export const SENSOR_CONSUMER_PARTITIONS_CONCURRENTLY = 3;

/** What {@linkcode startSensorDeltaConsumer} needs. */
export interface SensorDeltaConsumerDeps {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  readonly nudgeOutbox: () => void;
  readonly region: string;
  /** Where a new group starts; "earliest" so a new region misses no delta. @default "earliest" */
  readonly from?: "earliest" | "latest";
  /** @default {@linkcode SENSOR_CONSUMER_BATCH_MAX} */
  readonly batchMax?: number;
  /**
   * Applies a batch; a replica region forwards it to the writer region (`forward_batch.ts`).
   * @default applySensorBatch on `sql`
   */
  readonly apply?: (records: readonly IncomingRecord[]) => Promise<SensorBatchOutcome>;
}

/** Joins the group and applies deltas; `close()` lets the batch in flight finish, commits and leaves. */
export async function startSensorDeltaConsumer(deps: SensorDeltaConsumerDeps): Promise<{ close(): Promise<void> }> {
  const topic = sensorDeltaReceived.eventType;
  await deps.eventLog.ensureTopics([{ name: topic, partitions: 3 }, { name: dlqTopicOf(topic), partitions: 3 }]);
  const handleBatch = async (records: readonly IncomingRecord[]) => {
    const outcome = await (deps.apply ? deps.apply(records) : applySensorBatch(deps.sql, records));
    if (outcome.applied > 0) deps.nudgeOutbox();
    if (outcome.rejected.length === 0) return;
    for (const { record, error } of outcome.rejected) {
      log.warn("sensor delta rejected", { key: record.key, offset: record.offset, error: String(error) });
    }
    // After the commit: a failed publish throws, the batch comes again, its applied ids are then seen.
    await deps.eventLog.publish(
      dlqTopicOf(topic),
      outcome.rejected.map(({ record, error }) => dlqRecordOf(record, error, 1)),
    );
  };
  const common = {
    groupId: `ecommerce-${deps.region}.sensor-deltas`,
    topics: [topic],
    from: deps.from ?? "earliest",
    maxAttempts: SENSOR_CONSUMER_ATTEMPTS_MAX,
  } as const;
  const subscription = deps.eventLog.subscribeBatches
    ? await deps.eventLog.subscribeBatches({
      ...common,
      batchMax: deps.batchMax ?? SENSOR_CONSUMER_BATCH_MAX,
      partitionsConcurrently: SENSOR_CONSUMER_PARTITIONS_CONCURRENTLY,
      handler: handleBatch,
    })
    : await deps.eventLog.subscribe({ ...common, handler: (record) => handleBatch([record]) });
  await subscription.ready;
  return { close: () => subscription.close() };
}
