/**
 * @module
 * What the DR drill reports, computed from the load generator's attempts: RTO as the seconds without a
 * successful order write around the failure, and the acknowledged orders RPO is checked against.
 */
import type { OrderAttempt } from "./order_load.ts";

export interface RtoMeasurement {
  /** Completion of the last acknowledged write before the failure (ms, performance.now clock). */
  readonly lastBeforeMs: number | undefined;
  /** Completion of the first acknowledged write sent after the failure. */
  readonly firstAfterMs: number | undefined;
  /** Seconds without a successful order write: firstAfter − lastBefore (undefined when none came back). */
  readonly rtoSec: number | undefined;
  /** Seconds from the failure to the first acknowledged write sent after it. */
  readonly failureToFirstWriteSec: number | undefined;
}

/**
 * RTO around a failure injected at `failureMs`. Only writes *sent* after the failure count as recovery: an
 * answer already on its way when east died says nothing about west taking over.
 */
export function measureRto(attempts: readonly OrderAttempt[], failureMs: number): RtoMeasurement {
  const acked = attempts.filter((a) => a.status === 201);
  const before = acked.filter((a) => a.doneMs <= failureMs).map((a) => a.doneMs);
  const after = acked.filter((a) => a.sentMs > failureMs).map((a) => a.doneMs);
  const lastBeforeMs = before.length > 0 ? Math.max(...before) : undefined;
  const firstAfterMs = after.length > 0 ? Math.min(...after) : undefined;
  const sec = (ms: number) => Math.round(ms) / 1000;
  return {
    lastBeforeMs,
    firstAfterMs,
    rtoSec: lastBeforeMs !== undefined && firstAfterMs !== undefined ? sec(firstAfterMs - lastBeforeMs) : undefined,
    failureToFirstWriteSec: firstAfterMs !== undefined ? sec(firstAfterMs - failureMs) : undefined,
  };
}

/** The ids of every acknowledged order (201 with an id). */
export function acknowledgedOrderIds(attempts: readonly OrderAttempt[]): string[] {
  return attempts.filter((a) => a.status === 201 && a.orderId !== undefined).map((a) => a.orderId as string);
}

/** Attempts per outcome (`201`, `503 COMMON.UPSTREAM_UNAVAILABLE`, `0 TimeoutError`, …), for the report. */
export function outcomeCounts(attempts: readonly OrderAttempt[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of attempts) {
    const key = a.status === 201 ? "201" : `${a.status} ${a.code ?? ""}`.trim();
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
