/**
 * @module
 * The inventory side of the sensor feed: consumes `iot.inventory.sensor.delta_received.v1` (group
 * `ecommerce-<region>.sensor-deltas`) and applies the deltas of a Kafka batch in one transaction
 * (`apply_sensor_batch.ts`: idempotent by message id, one `stock.adjusted` per product per batch through the
 * outbox). A delta that can never apply (not an envelope, unknown sku, stock would go negative) is
 * dead-lettered with its reason and the rest of its batch applies; anything else (database down) is thrown
 * as a `RetryLaterError`, so the event log delivers the batch again for as long as the outage lasts and never
 * dead-letters good deltas. On an event
 * log without batches (the in-process one) each record is a batch of one.
 */
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { log } from "../../../shared/observability/mod.ts";
import {
  dlqRecordOf,
  dlqTopicOf,
  type EventLog,
  type IncomingRecord,
  retryLaterOnFailure,
  type Sql,
} from "../../../shared/ports/mod.ts";
import { applySensorBatch, SENSOR_ADJUSTMENT_SOURCE, type SensorBatchOutcome } from "./apply_sensor_batch.ts";
import { SensorBatchRefusedError } from "./forward_batch.ts";

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
/**
 * Least time between the starts of two batches of one partition while batches come in short (below
 * `batchMax`). A consumer that keeps up applies whatever one fetch brought — tens of records — and every
 * batch pays a fixed cost: a transaction with its WAL flush, an offset commit, one `stock.adjusted` per
 * product through the outbox. Holding the partition this long lets the next fetch bring a fuller batch: in
 * `mqtt_sensor_ingest` the median batch went from 28 deltas to 224 and PostgreSQL's CPU per delta from 118
 * to 32 µs. It adds at most this much to a delta's latency; a full batch never waits.
 */
export const SENSOR_CONSUMER_LINGER_MS = 100;

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
  /** @default {@linkcode SENSOR_CONSUMER_LINGER_MS} (0 applies every fetch at once) */
  readonly lingerMs?: number;
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
  const batchMax = deps.batchMax ?? SENSOR_CONSUMER_BATCH_MAX;
  const lingerMs = deps.lingerMs ?? SENSOR_CONSUMER_LINGER_MS;
  if (!Number.isFinite(lingerMs) || lingerMs < 0) throw new RangeError(`lingerMs must be ≥ 0, got ${lingerMs}`);
  const handleBatch = async (records: readonly IncomingRecord[]) => {
    const startedMs = performance.now();
    await applyBatch(records);
    // After the apply (its offset commits when this returns): only the partition's NEXT batch waits.
    const waitMs = records.length < batchMax ? startedMs + lingerMs - performance.now() : 0;
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
  };
  // Bad deltas are rejected (dead-lettered) by the apply itself; any failure that reaches here is the
  // database's, the writer region's or the broker's, and is waited out instead of dead-lettering good deltas.
  const applyBatch = (records: readonly IncomingRecord[]) =>
    retryLaterOnFailure(
      "Applying sensor deltas",
      () => applyOrReject(records),
      // The writer region refused the batch for good: counted, so it ends dead-lettered.
      (error) => error instanceof SensorBatchRefusedError,
    );
  const applyOrReject = async (records: readonly IncomingRecord[]) => {
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
      batchMax,
      partitionsConcurrently: SENSOR_CONSUMER_PARTITIONS_CONCURRENTLY,
      handler: handleBatch,
    })
    : await deps.eventLog.subscribe({ ...common, handler: (record) => applyBatch([record]) });
  await subscription.ready;
  return { close: () => subscription.close() };
}
