/**
 * @module
 * Open-loop load for the bench: `measureAtRate()` starts an operation at a fixed arrival rate whatever the
 * completions do, and records each latency from the request's SCHEDULED start, so a stall shows as the
 * queue of late requests behind it (coordinated omission is not hidden, unlike a closed loop that simply
 * waits). Requests the generator could not start because `maxInFlight` were outstanding are counted as
 * dropped; requests it started well after their slot (the generator itself fell behind) are counted as late.
 * `compareAtRate()` interleaves subject and baseline rounds like `compare()` does. The closed-loop
 * `measure()` in harness.ts is unchanged. Clock and sleep are injectable (`open_loop_test.ts` uses virtual time).
 */
import type { Histogram } from "hdr-histogram-js";
import { createPreciseSleep } from "./precise_sleep.ts";
import {
  createLatencyHistogram,
  type Measurement,
  mergeRounds,
  ROUNDS_DEFAULT,
  type Side,
  type Stats,
} from "./harness.ts";

export interface RateOptions {
  /** Arrivals per second. */
  readonly ratePerSec: number;
  /** Length of the recorded schedule, in ms. */
  readonly durationMs: number;
  /** Unrecorded schedule first, at the same rate (JIT, pools, caches). @default 0 */
  readonly warmupMs?: number;
  /** Requests outstanding at most; an arrival beyond it is dropped (counted, not recorded, not started). */
  readonly maxInFlight: number;
  /** A request started more than this after its slot counts as late (the generator fell behind). @default 5 */
  readonly lateAfterMs?: number;
  /**
   * What a failing request does: "throw" stops the schedule and rethrows the first error; "count" records
   * its latency (to the failure) like any other and counts it in `failed` — under overload an error (a 503,
   * a deadline) is a result, not a broken bench. @default "throw"
   */
  readonly onError?: "throw" | "count";
  /** Bound on waiting for the requests still in flight when the schedule ends. @default 10_000 */
  readonly drainTimeoutMs?: number;
  /** Milliseconds from an arbitrary origin. @default performance.now */
  readonly now?: () => number;
  /**
   * Resolves after about `ms` milliseconds. @default a {@linkcode createPreciseSleep} clock thread for the run
   * (Deno's `setTimeout` would add up to 2 ms of the generator's own lateness to every latency)
   */
  readonly sleep?: (ms: number) => Promise<void>;
  /** @default Deno.memoryUsage */
  readonly memoryUsage?: () => { readonly rss: number; readonly heapUsed: number };
}

/** One open-loop run: a {@linkcode Measurement} plus what the schedule could not do. */
export interface RateMeasurement extends Measurement {
  readonly ratePerSec: number;
  /** Arrivals in the recorded schedule (recorded + dropped). */
  readonly scheduled: number;
  readonly dropped: number;
  readonly late: number;
  /** Requests that failed (only with `onError: "count"`; they are in the histogram too). */
  readonly failed: number;
  /** The first failure's message, when one was counted. */
  readonly firstError?: string;
}

/** Bounds that keep a typo from starting a run that never ends or floods the machine. */
const RATE_MAX = 100_000;
const DURATION_MS_MAX = 600_000;
const IN_FLIGHT_MAX = 10_000;

/**
 * Starts `op` every `1000 / ratePerSec` ms for `warmupMs + durationMs` (slots in the warm-up are not
 * recorded), each latency measured from the slot's scheduled time in whole microseconds. Resolves when
 * the last request has finished; rethrows the first error of `op` (scheduling stops at the first error).
 */
export async function measureAtRate(
  label: string,
  op: () => Promise<unknown>,
  options: RateOptions,
): Promise<RateMeasurement> {
  const { ratePerSec, durationMs, warmupMs = 0, maxInFlight, lateAfterMs = 5, drainTimeoutMs = 10_000 } = options;
  assertRange(label, "ratePerSec", ratePerSec, Number.MIN_VALUE, RATE_MAX);
  assertRange(label, "durationMs", durationMs, Number.MIN_VALUE, DURATION_MS_MAX);
  assertRange(label, "warmupMs", warmupMs, 0, DURATION_MS_MAX);
  assertRange(label, "lateAfterMs", lateAfterMs, 0, DURATION_MS_MAX);
  assertRange(label, "drainTimeoutMs", drainTimeoutMs, Number.MIN_VALUE, DURATION_MS_MAX);
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > IN_FLIGHT_MAX) {
    throw new RangeError(`measureAtRate("${label}"): maxInFlight is "${maxInFlight}"; use 1 to ${IN_FLIGHT_MAX}`);
  }
  const now = options.now ?? (() => performance.now());
  const clock = options.sleep === undefined ? await createPreciseSleep() : undefined;
  try {
    return await runSchedule(label, op, options, now, options.sleep ?? clock!.sleep);
  } finally {
    clock?.close();
  }
}

async function runSchedule(
  label: string,
  op: () => Promise<unknown>,
  options: RateOptions,
  now: () => number,
  sleep: (ms: number) => Promise<void>,
): Promise<RateMeasurement> {
  const { ratePerSec, durationMs, warmupMs = 0, maxInFlight, lateAfterMs = 5, drainTimeoutMs = 10_000 } = options;
  const countErrors = options.onError === "count";
  const memoryUsage = options.memoryUsage ?? (() => Deno.memoryUsage());
  const intervalMs = 1000 / ratePerSec;
  const warmupSlots = Math.round(warmupMs / intervalMs);
  const recordedSlots = Math.max(1, Math.round(durationMs / intervalMs));
  const totalSlots = warmupSlots + recordedSlots;

  const histogram: Histogram = createLatencyHistogram();
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let dropped = 0;
  let late = 0;
  let failed = 0;
  let firstError: string | undefined;
  let memoryBefore = memoryUsage();
  let recordStartMs = 0;
  let lastEndMs = 0;

  const originMs = now();
  for (let slot = 0; slot < totalSlots && failure === undefined;) {
    const slotMs = originMs + slot * intervalMs;
    const waitMs = slotMs - now();
    if (waitMs > 0) {
      await sleep(waitMs);
      continue;
    }
    // Every slot that is due now starts now (a timer wakes up about once a millisecond, slots may be closer).
    const recorded = slot >= warmupSlots;
    if (slot === warmupSlots) {
      memoryBefore = memoryUsage();
      recordStartMs = slotMs;
    }
    if (inFlight.size >= maxInFlight) {
      if (recorded) dropped++;
    } else {
      if (recorded && -waitMs > lateAfterMs) late++;
      const request = start(op, slotMs, recorded);
      inFlight.add(request);
      request.finally(() => inFlight.delete(request));
    }
    slot++;
  }
  const drained = await settleWithin([...inFlight], drainTimeoutMs, options.sleep);
  if (failure !== undefined) throw (failure as { error: unknown }).error;
  if (!drained) {
    throw new Error(
      `measureAtRate("${label}"): ${inFlight.size} requests still in flight ${drainTimeoutMs} ms after the schedule ` +
        "ended; lower the rate or raise drainTimeoutMs",
    );
  }
  const memoryAfter = memoryUsage();
  const scheduleEndMs = originMs + totalSlots * intervalMs;
  const elapsedMs = Math.max(lastEndMs, scheduleEndMs) - recordStartMs;
  return {
    label,
    histogram,
    elapsedMs,
    capped: false,
    memoryBefore,
    memoryAfter,
    ratePerSec,
    scheduled: recordedSlots,
    dropped,
    late,
    failed,
    ...(firstError === undefined ? {} : { firstError }),
  };

  async function start(run: () => Promise<unknown>, slotMs: number, recorded: boolean): Promise<void> {
    try {
      await run();
    } catch (error) {
      if (!countErrors) {
        failure ??= { error };
        return;
      }
      if (recorded) failed++;
      firstError ??= error instanceof Error ? error.message : String(error);
    }
    const endMs = now();
    if (!recorded) return;
    lastEndMs = Math.max(lastEndMs, endMs);
    histogram.recordValue(Math.max(0, Math.round((endMs - slotMs) * 1000)));
  }
}

/** Options of {@linkcode compareAtRate}: each round runs each side once with these. */
export interface CompareAtRateOptions extends Omit<RateOptions, "durationMs" | "warmupMs"> {
  /** @default 3 */
  readonly rounds?: number;
  readonly durationMsPerRound: number;
  /** @default 0 */
  readonly warmupMsPerRound?: number;
}

/** What one side of an open-loop comparison adds to {@linkcode Stats}. */
export interface RateStats extends Stats {
  readonly ratePerSec: number;
  readonly scheduled: number;
  readonly dropped: number;
  readonly late: number;
  readonly failed: number;
  readonly firstError?: string;
}

/**
 * Runs subject and baseline at the same rate in interleaved rounds (S B, B S, S B …) and merges each side's
 * rounds. The label of each side gets the schedule's outcome appended ("@200/s, 0 dropped, 3 late", and
 * ", 7 failed" when failures are counted), so the
 * table shows it next to the percentiles.
 */
export async function compareAtRate(
  subject: Side,
  baseline: Side,
  options: CompareAtRateOptions,
): Promise<{ subject: RateStats; baseline: RateStats }> {
  const { rounds = ROUNDS_DEFAULT, durationMsPerRound, warmupMsPerRound = 0, ...rate } = options;
  const perRound: RateOptions = { ...rate, durationMs: durationMsPerRound, warmupMs: warmupMsPerRound };
  return await interleaveRounds(
    rounds,
    () => measureAtRate(subject.label, subject.op, perRound),
    () => measureAtRate(baseline.label, baseline.op, perRound),
  );
}

/**
 * Runs `rounds` rounds of each side, alternating which goes first, and merges each side's measurements.
 * Exported for scenarios that time a span of their own inside an open-loop round (`order_to_kafka`).
 */
export async function interleaveRounds(
  rounds: number,
  subjectRound: () => Promise<RateMeasurement>,
  baselineRound: () => Promise<RateMeasurement>,
): Promise<{ subject: RateStats; baseline: RateStats }> {
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
    throw new RangeError(`Bench option "rounds" is "${rounds}"; use a whole number from 1 to 100`);
  }
  const subjectRounds: RateMeasurement[] = [];
  const baselineRounds: RateMeasurement[] = [];
  for (let round = 0; round < rounds; round++) {
    const order: [() => Promise<RateMeasurement>, RateMeasurement[]][] = [
      [subjectRound, subjectRounds],
      [baselineRound, baselineRounds],
    ];
    if (round % 2 === 1) order.reverse();
    for (const [run, into] of order) into.push(await run());
  }
  return { subject: mergeRateRounds(subjectRounds), baseline: mergeRateRounds(baselineRounds) };
}

/** Merges open-loop rounds: the harness's merge, with the schedule's outcome summed and named in the label. */
export function mergeRateRounds(rounds: readonly RateMeasurement[]): RateStats {
  const stats = mergeRounds(rounds);
  const scheduled = rounds.reduce((sum, r) => sum + r.scheduled, 0);
  const dropped = rounds.reduce((sum, r) => sum + r.dropped, 0);
  const late = rounds.reduce((sum, r) => sum + r.late, 0);
  const failed = rounds.reduce((sum, r) => sum + r.failed, 0);
  const firstError = rounds.find((r) => r.firstError !== undefined)?.firstError;
  const ratePerSec = rounds[0].ratePerSec;
  return {
    ...stats,
    label: `${stats.label} @${formatRate(ratePerSec)}/s, ${dropped} dropped, ${late} late` +
      (failed > 0 ? `, ${failed} failed` : ""),
    ratePerSec,
    scheduled,
    dropped,
    late,
    failed,
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/** `true` when every promise settled within `timeoutMs` (on `sleep`, or a real timer that is cleared). */
async function settleWithin(
  promises: readonly Promise<unknown>[],
  timeoutMs: number,
  sleep: ((ms: number) => Promise<void>) | undefined,
): Promise<boolean> {
  if (promises.length === 0) return true;
  const all = Promise.allSettled(promises).then(() => true);
  if (sleep !== undefined) return await Promise.race([all, sleep(timeoutMs).then(() => false)]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
  return await Promise.race([all, timeout]).finally(() => clearTimeout(timer));
}

function formatRate(rate: number): string {
  return Number.isInteger(rate) ? String(rate) : rate.toFixed(1);
}

function assertRange(label: string, name: string, value: number, min: number, max: number): void {
  if (!(typeof value === "number" && value >= min && value <= max)) {
    throw new RangeError(`measureAtRate("${label}"): ${name} is "${value}"; use a number from ${min} to ${max}`);
  }
}
