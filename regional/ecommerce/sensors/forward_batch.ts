/**
 * @module
 * Sensor deltas consumed in a region whose inventory is a replica (orders/writer: the writer region authors
 * stock) are applied by the writer: the replica's consumer POSTs its Kafka batch to the writer's e-commerce
 * service (`/internal/v1/sensor-batches`), which runs the same `applySensorBatch` (idempotent by message id)
 * and answers the outcome. The replica commits its offsets only after that answer, so each delta is applied
 * exactly once in the writer: a lost answer redelivers the batch, whose ids the writer's ledger has already.
 * The route is on the service port only (the ingress routes no `/internal` path), like the inventory gRPC port.
 *
 * Across regions that port is reached over the network, so every request is signed: Standard Webhooks headers
 * (HMAC-SHA256 over `<id>.<timestamp>.<body>`) with the key all e-commerce processes share
 * (`BV_INTERNAL_SIGNING_KEY`), made fresh at each attempt. The writer checks the signature before it reads
 * anything else and refuses a missing, wrong or stale one (over 5 minutes) with 401 `COMMON.SIGNATURE_INVALID`.
 * A replay inside the window changes nothing: the writer's ledger already holds its message ids.
 */
import { type Context, Hono } from "hono";
import { z } from "zod";
import { type Config, ConfigError } from "../../../shared/config/config.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import { isProblemCode } from "../../../shared/contracts/grpc_problem.ts";
import {
  bodyTooLarge,
  boundedBody,
  declaredOver,
  errorToResponse,
  problemResponse,
  readJson,
  requestBodyBoundsOf,
} from "../../../shared/http/mod.ts";
import type { IncomingRecord, Sql } from "../../../shared/ports/mod.ts";
import { isDeterministicSqlFailure } from "../../../shared/ports/retry_later.ts";
import { verifyWebhook } from "../../../partner-kit/mod.ts";
import { assertInternalSigningKey, INTERNAL_SIGNATURE_TOLERANCE_SEC } from "../internal_signing.ts";
// The leaf, not webhooks/mod.ts: the background thread loads this file and needs none of the delivery machinery.
import { signatureHeaders } from "../webhooks/signing.ts";
import { applySensorBatch, type SensorBatchOutcome } from "./apply_sensor_batch.ts";

export const SENSOR_BATCH_PATH = "/internal/v1/sensor-batches";
/** Records per forwarded batch at most (the consumer's batch bound, SENSOR_CONSUMER_BATCH_MAX, fits). */
export const SENSOR_BATCH_RECORDS_MAX = 1_000;
/** Set on a forwarded batch (the region that forwarded it); the writer refuses it if it is a replica too. */
const FORWARDED_FROM_HEADER = "x-bv-forwarded-from-region";
/** Bound on a forwarded batch's body (1,000 records of at most 64 KiB of value each stay far below it). */
const BATCH_BYTES_MAX = 8 * 1024 * 1024;

/**
 * The writer refused the batch for good (its answer would be the same on every try: a record too large for
 * the route, a SQL error of the statement itself). The consumer counts it toward its attempts, so the
 * batch is dead-lettered in the end instead of stalling its partition forever; an outage, a timeout, a 401
 * (the regions' signing keys differ), a 421 (the target is a replica itself) or a 503 is waited out.
 */
export class SensorBatchRefusedError extends Error {
  override readonly name = "SensorBatchRefusedError";
}

/**
 * Answers of the writer that may change on a later try: waited out, never counted. 401 is one: the writer does
 * not accept our signature because BV_INTERNAL_SIGNING_KEY differs between the regions (a rotation done out of
 * step, a typo) or a clock is off by over 5 minutes. That is a configuration error and nothing is wrong with the
 * batch: counted, it would dead-letter every delta of the region about 25 s into the mismatch; waited out, the
 * deltas stay in Kafka (lag grows, each retry logs an error naming the variable) and apply in order, once each,
 * when the keys agree.
 */
const RETRYABLE_STATUSES = new Set([401, 408, 421, 425, 429]);

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

/** `BV_INTERNAL_SIGNING_KEY`, which every e-commerce process needs: a {@linkcode ConfigError} naming it when unset. */
export function internalSigningKeyOf(config: Pick<Config, "BV_INTERNAL_SIGNING_KEY">): string {
  const key = config.BV_INTERNAL_SIGNING_KEY;
  if (key === undefined) {
    throw new ConfigError(
      "BV_INTERNAL_SIGNING_KEY",
      "is missing: e-commerce signs the sensor batches it forwards with it; set the same key in every region",
    );
  }
  return key;
}

/**
 * The writer's side: applies a forwarded batch signed with `signingKey` here, 401 when its signature is not
 * valid, or 421 while this region is a replica itself.
 */
export function createSensorBatchRoutes(deps: {
  readonly sql: Sql;
  readonly writerElsewhere: WriterElsewhere;
  readonly nudgeOutbox: () => void;
  /** Shared by every e-commerce process (`BV_INTERNAL_SIGNING_KEY`): `whsec_` + base64 of ≥ 32 bytes. */
  readonly signingKey: string;
}): Hono {
  assertInternalSigningKey(deps.signingKey);
  const app = new Hono();
  app.post(SENSOR_BATCH_PATH, async (c) => {
    // First of all: an unsigned caller changes nothing and learns nothing (not even which region writes).
    const refusal = await signatureRefusal(c, deps.signingKey);
    if (refusal) return refusal;
    const writer = await deps.writerElsewhere();
    if (writer !== undefined) {
      return problemResponse("ECOMMERCE.ORDER_WRITER_ELSEWHERE", `Stock is written in region "${writer}"`);
    }
    const { records } = await readJson(c, BatchSchema, { bytesMax: BATCH_BYTES_MAX });
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

/** A 401 (or 413, 408) problem response unless `c` carries a valid signature by `key`; undefined when it does. */
async function signatureRefusal(c: Context, key: string): Promise<Response | undefined> {
  // What the headers alone tell is checked before any byte of the body is read: anyone who reaches the port may
  // send a body, and a chunked one declares no length.
  const unsigned = unsignedHeadersReason(c.req.raw.headers, Date.now());
  if (unsigned !== undefined) {
    log.warn("a sensor batch without a valid signature was refused", { reason: unsigned });
    return problemResponse("COMMON.SIGNATURE_INVALID", `${unsigned}; sign the batch with BV_INTERNAL_SIGNING_KEY`);
  }
  const bounds = requestBodyBoundsOf({ bytesMax: BATCH_BYTES_MAX });
  const declared = declaredOver(c.req.raw.headers, bounds.bytesMax);
  if (declared !== undefined) return errorToResponse(bodyTooLarge(bounds.bytesMax, declared));
  // Read as it arrives, refused past the bound (a chunked body is never buffered whole to be measured).
  let body: Uint8Array<ArrayBuffer>;
  try {
    body = c.req.raw.body === null
      ? new Uint8Array()
      : new Uint8Array(await new Response(boundedBody(c.req.raw.body, bounds)).arrayBuffer());
  } catch (error) {
    return errorToResponse(error);
  }
  // readJson parses these same bytes once the signature holds.
  c.req.raw = new Request(c.req.raw, { body });
  const verdict = await verifyWebhook({
    headers: c.req.raw.headers,
    body,
    secrets: [key],
    toleranceSec: INTERNAL_SIGNATURE_TOLERANCE_SEC,
  });
  if (verdict.ok) return undefined;
  log.warn("a sensor batch without a valid signature was refused", { code: verdict.code, reason: verdict.reason });
  return problemResponse(
    "COMMON.SIGNATURE_INVALID",
    `The batch's signature is not valid (${verdict.code}): sign it with the BV_INTERNAL_SIGNING_KEY this region ` +
      `holds, with a clock less than ${INTERNAL_SIGNATURE_TOLERANCE_SEC} s off`,
  );
}

/**
 * Why the signature headers cannot be valid whatever the body (missing, or a timestamp outside the window), or
 * undefined; `verifyWebhook` checks them all again with the body.
 */
function unsignedHeadersReason(headers: Headers, nowMs: number): string | undefined {
  for (const name of ["webhook-signature", "webhook-id", "webhook-timestamp"]) {
    if (!headers.get(name)) return `The "${name}" header is missing`;
  }
  const timestamp = headers.get("webhook-timestamp")!;
  if (!/^\d{1,12}$/.test(timestamp)) return `The "webhook-timestamp" header is not Unix seconds`;
  if (Math.abs(Number(timestamp) - nowMs / 1_000) > INTERNAL_SIGNATURE_TOLERANCE_SEC + 1) {
    return `The "webhook-timestamp" header is more than ${INTERNAL_SIGNATURE_TOLERANCE_SEC} s off`;
  }
  return undefined;
}

/**
 * The consumer's side: applies `records` locally while this region writes stock, otherwise forwards them to
 * the writer (`serviceUrlOf(writer)`, signed with `signingKey`, bounded by `timeoutMs`). Throws on any failure
 * to get an outcome, so the event log delivers the batch again (and dead-letters it only after its bounded
 * attempts when the writer refused it for good).
 */
export function createSensorBatchApplier(deps: {
  readonly sql: Sql;
  readonly region: string;
  readonly writerElsewhere: WriterElsewhere;
  readonly serviceUrlOf: (region: string) => string | undefined;
  readonly timeoutMs: number;
  /** Shared by every e-commerce process (`BV_INTERNAL_SIGNING_KEY`): `whsec_` + base64 of ≥ 32 bytes. */
  readonly signingKey: string;
  /** Injected for tests. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}): (records: readonly IncomingRecord[]) => Promise<SensorBatchOutcome> {
  if (!(deps.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${deps.timeoutMs}`);
  assertInternalSigningKey(deps.signingKey);
  const doFetch = deps.fetch ?? fetch;
  return async (records) => {
    const writer = await deps.writerElsewhere();
    if (writer === undefined) return await applySensorBatch(deps.sql, records);
    const base = deps.serviceUrlOf(writer);
    if (base === undefined) throw new Error(`No e-commerce service URL for the stock writer region "${writer}"`);
    const payload = JSON.stringify({ records });
    // Signed at each attempt, so a batch redelivered after a long outage is never refused as stale.
    const signature = await signatureHeaders(
      { webhookId: crypto.randomUUID(), timestampSec: Math.floor(Date.now() / 1000), body: payload },
      [deps.signingKey],
    );
    const response = await doFetch(`${base}${SENSOR_BATCH_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json", [FORWARDED_FROM_HEADER]: deps.region, ...signature },
      body: payload,
      signal: AbortSignal.timeout(deps.timeoutMs),
    });
    const text = await response.text();
    if (response.status !== 200) {
      const message = `Sensor batch forwarded to region "${writer}" answered ${response.status}: ${text.slice(0, 300)}`;
      if (response.status === 401) {
        log.error("the stock writer refused the signature of a sensor batch; waiting until the keys agree", {
          writer,
          fix: "set the same BV_INTERNAL_SIGNING_KEY in every region's e-commerce and check their clocks",
          answer: text.slice(0, 300),
        });
      }
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
