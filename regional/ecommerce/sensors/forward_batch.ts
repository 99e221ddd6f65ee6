/**
 * @module
 * Sensor deltas consumed in a region whose inventory is a replica (orders/writer: the writer region authors
 * stock) are applied by the writer: the replica's consumer POSTs its Kafka batch to the writer's e-commerce
 * service (`/internal/v1/sensor-batches`), which runs the same `applySensorBatch` (idempotent by message id)
 * and answers the outcome. The replica commits its offsets only after that answer, so each delta is applied
 * exactly once in the writer: a lost answer redelivers the batch, whose ids the writer's ledger has already.
 * The route is on the service port only (the ingress routes no `/internal` path), like the inventory gRPC port.
 */
import { Hono } from "hono";
import { z } from "zod";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import { isProblemCode } from "../../../shared/contracts/grpc_problem.ts";
import { problemResponse, readJson } from "../../../shared/http/mod.ts";
import type { IncomingRecord, Sql } from "../../../shared/ports/mod.ts";
import { isDeterministicSqlFailure } from "../../../shared/ports/retry_later.ts";
import { applySensorBatch, type SensorBatchOutcome } from "./apply_sensor_batch.ts";

export const SENSOR_BATCH_PATH = "/internal/v1/sensor-batches";
/** Records per forwarded batch at most (the consumer's batch bound, SENSOR_CONSUMER_BATCH_MAX, fits). */
export const SENSOR_BATCH_RECORDS_MAX = 1_000;
/** Set on a forwarded batch (the region that forwarded it); the writer refuses it if it is a replica too. */
const FORWARDED_FROM_HEADER = "x-bv-forwarded-from-region";

/**
 * The writer refused the batch for good (its answer would be the same on every try: a record too large for
 * the route, a SQL error of the statement itself). The consumer counts it toward its attempts, so the
 * batch is dead-lettered in the end instead of stalling its partition forever; an outage, a timeout, a 421
 * (the target is a replica itself) or a 503 is waited out.
 */
export class SensorBatchRefusedError extends Error {
  override readonly name = "SensorBatchRefusedError";
}

/** Answers of the writer that may change on a later try: waited out, never counted. */
const RETRYABLE_STATUSES = new Set([408, 421, 425, 429]);

/** The writer region when this region's database is a replica; undefined when this region writes stock. */
export type WriterElsewhere = () => Promise<string | undefined>;

const RecordSchema = z.object({
  topic: z.string().max(512),
  partition: z.number().int().min(0),
  offset: z.string().regex(/^\d{1,20}$/),
  key: z.string().max(1_024),
  value: z.string().max(64 * 1024),
  headers: z.record(z.string(), z.string()),
  timestampMs: z.number(),
});
const BatchSchema = z.object({ records: z.array(RecordSchema).min(1).max(SENSOR_BATCH_RECORDS_MAX) });

interface OutcomeBody {
  readonly applied: number;
  readonly duplicates: number;
  readonly rejected: readonly { readonly index: number; readonly code: string; readonly detail: string }[];
}

/** The writer's side: applies a forwarded batch here, or 421 while this region is a replica itself. */
export function createSensorBatchRoutes(deps: {
  readonly sql: Sql;
  readonly writerElsewhere: WriterElsewhere;
  readonly nudgeOutbox: () => void;
}): Hono {
  const app = new Hono();
  app.post(SENSOR_BATCH_PATH, async (c) => {
    const writer = await deps.writerElsewhere();
    if (writer !== undefined) {
      return problemResponse("ECOMMERCE.ORDER_WRITER_ELSEWHERE", `Stock is written in region "${writer}"`);
    }
    const { records } = await readJson(c, BatchSchema, { bytesMax: 8 * 1024 * 1024 });
    let outcome: SensorBatchOutcome;
    try {
      outcome = await applySensorBatch(deps.sql, records);
    } catch (error) {
      // Told apart for the replica: a statement that fails on its data fails again (400, counted there);
      // anything else is this database's outage (503, waited out).
      if (isDeterministicSqlFailure(error)) {
        log.warn("a forwarded sensor batch cannot be applied", { error: String(error) });
        return problemResponse("COMMON.VALIDATION_FAILED", `The batch cannot be applied: ${String(error)}`);
      }
      log.warn("a forwarded sensor batch met a database outage", { error: String(error) });
      return problemResponse("COMMON.UPSTREAM_UNAVAILABLE", "The stock database is unavailable; retry the batch");
    }
    if (outcome.applied > 0) deps.nudgeOutbox();
    const indexOf = new Map<IncomingRecord, number>(records.map((r, i) => [r, i]));
    const body: OutcomeBody = {
      applied: outcome.applied,
      duplicates: outcome.duplicates,
      rejected: outcome.rejected.map(({ record, error }) => ({
        index: indexOf.get(record) ?? -1,
        code: error.code,
        detail: error.message,
      })),
    };
    return c.json(body);
  });
  return app;
}

/**
 * The consumer's side: applies `records` locally while this region writes stock, otherwise forwards them to
 * the writer (`serviceUrlOf(writer)`, bounded by `timeoutMs`). Throws on any failure to get an outcome, so
 * the event log delivers the batch again (and dead-letters it only after its bounded attempts).
 */
export function createSensorBatchApplier(deps: {
  readonly sql: Sql;
  readonly region: string;
  readonly writerElsewhere: WriterElsewhere;
  readonly serviceUrlOf: (region: string) => string | undefined;
  readonly timeoutMs: number;
  /** Injected for tests. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}): (records: readonly IncomingRecord[]) => Promise<SensorBatchOutcome> {
  if (!(deps.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${deps.timeoutMs}`);
  const doFetch = deps.fetch ?? fetch;
  return async (records) => {
    const writer = await deps.writerElsewhere();
    if (writer === undefined) return await applySensorBatch(deps.sql, records);
    const base = deps.serviceUrlOf(writer);
    if (base === undefined) throw new Error(`No e-commerce service URL for the stock writer region "${writer}"`);
    const response = await doFetch(`${base}${SENSOR_BATCH_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json", [FORWARDED_FROM_HEADER]: deps.region },
      body: JSON.stringify({ records }),
      signal: AbortSignal.timeout(deps.timeoutMs),
    });
    const text = await response.text();
    if (response.status !== 200) {
      const message = `Sensor batch forwarded to region "${writer}" answered ${response.status}: ${text.slice(0, 300)}`;
      const refused = response.status >= 400 && response.status < 500 && !RETRYABLE_STATUSES.has(response.status);
      throw refused ? new SensorBatchRefusedError(message) : new Error(message);
    }
    const body = JSON.parse(text) as OutcomeBody;
    return {
      applied: body.applied,
      duplicates: body.duplicates,
      rejected: body.rejected.map(({ index, code, detail }) => ({
        record: records[index],
        error: new ProblemError(isProblemCode(code) ? code : "COMMON.INTERNAL", detail),
      })),
    };
  };
}
