/**
 * @module
 * The bench harness: what a scenario is, `measure()` (one bounded run of an operation into an HDR histogram
 * of microseconds), `compare()` (subject and baseline in interleaved rounds, histograms merged) and the
 * ratio a scenario reports. Pure apart from the injectable clock and memory probe, so the statistics are
 * unit-tested with a fake clock (`harness_test.ts`).
 */
import { build, type Histogram } from "hdr-histogram-js";

/** Latency distribution and throughput of one side of a scenario; latencies in microseconds. */
export interface Stats {
  readonly label: string;
  /** Operations recorded (warm-up excluded). */
  readonly count: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly maxUs: number;
  readonly meanUs: number;
  /** Recorded operations per second of measured wall time (all workers together). */
  readonly throughputOpsPerSec: number;
  /** Measured wall time, warm-up excluded, summed over rounds. */
  readonly elapsedMs: number;
  readonly rounds: number;
  /** Rounds that stopped at their time cap before reaching their iteration count. */
  readonly cappedRounds: number;
  readonly memory: MemoryStats;
}

/**
 * Process memory around the measurement. The process is shared by both sides, so these numbers are a rough
 * hint, not an attribution: `heapUsedDeltaBytes` sums the heap growth of this side's own rounds only.
 */
export interface MemoryStats {
  readonly rssBeforeBytes: number;
  readonly rssAfterBytes: number;
  readonly heapUsedBeforeBytes: number;
  readonly heapUsedAfterBytes: number;
  readonly heapUsedDeltaBytes: number;
}

/** subject ÷ baseline. Latency ratios above 1 and throughput ratios below 1 mean the subject is slower. */
export interface Ratio {
  readonly p50: number | null;
  readonly p99: number | null;
  readonly throughput: number | null;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly subject: Stats;
  readonly baseline: Stats;
  readonly ratio: Ratio;
}

/** Lets a scenario report that its infrastructure is missing; the runner records it as skipped. */
export class ScenarioSkipped extends Error {
  override readonly name = "ScenarioSkipped";
}

/** What the runner gives a scenario. */
export interface ScenarioContext {
  /** A progress line on stderr (stdout carries only the table). */
  log(message: string): void;
  /**
   * Throws {@linkcode ScenarioSkipped} unless a TCP connection to `hostPort` (`host:port`) opens quickly.
   * `what` names the service in the reason, `hint` says how to bring it up.
   */
  requireTcp(hostPort: string, what: string, hint?: string): Promise<void>;
}

export interface Scenario {
  readonly name: string;
  /** One sentence: what the subject and the baseline do. */
  readonly description: string;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}

/** One side of a comparison: a label and the operation timed once per sample. */
export interface Side {
  readonly label: string;
  readonly op: () => Promise<unknown>;
}

export interface MeasureOptions {
  /** Recorded operations at most. */
  readonly iterations: number;
  /** Unrecorded operations first (JIT, pools, caches). @default 0 */
  readonly warmup?: number;
  /** Operations in flight at once. @default 1 */
  readonly concurrency?: number;
  /** No operation starts after this many ms from the start of the call (warm-up included). */
  readonly timeCapMs: number;
  /** Milliseconds from an arbitrary origin. @default performance.now */
  readonly now?: () => number;
  /** @default Deno.memoryUsage */
  readonly memoryUsage?: () => { readonly rss: number; readonly heapUsed: number };
}

/** The result of one {@linkcode measure} call; the histogram is kept so rounds can be merged. */
export interface Measurement {
  readonly label: string;
  readonly histogram: Histogram;
  readonly elapsedMs: number;
  readonly capped: boolean;
  readonly memoryBefore: { readonly rss: number; readonly heapUsed: number };
  readonly memoryAfter: { readonly rss: number; readonly heapUsed: number };
}

/** Bounds that keep a typo from starting a run that never ends. */
const ITERATIONS_MAX = 10_000_000;
const CONCURRENCY_MAX = 1_024;
/** Histograms start able to hold 60 s in µs and grow (autoResize) if a stall goes past it. */
const HISTOGRAM_HIGHEST_US = 60_000_000;

/** An empty latency histogram: integer microseconds, 3 significant digits (0.1 % resolution). */
export function createLatencyHistogram(): Histogram {
  return build({
    autoResize: true,
    lowestDiscernibleValue: 1,
    highestTrackableValue: HISTOGRAM_HIGHEST_US,
    numberOfSignificantValueDigits: 3,
  });
}

/** Runs `op` up to `iterations` times (after `warmup`), `concurrency` at a time, stopping at `timeCapMs`. */
export async function measure(
  label: string,
  op: () => Promise<unknown>,
  options: MeasureOptions,
): Promise<Measurement> {
  const { iterations, warmup = 0, concurrency = 1, timeCapMs } = options;
  assertCount("iterations", iterations, 1, ITERATIONS_MAX);
  assertCount("warmup", warmup, 0, ITERATIONS_MAX);
  assertCount("concurrency", concurrency, 1, CONCURRENCY_MAX);
  if (!(timeCapMs > 0)) throw new RangeError(`measure("${label}"): timeCapMs is "${timeCapMs}"; use a positive number`);
  const now = options.now ?? (() => performance.now());
  const memoryUsage = options.memoryUsage ?? (() => Deno.memoryUsage());
  const deadlineMs = now() + timeCapMs;

  await runWorkers(op, warmup, concurrency, deadlineMs, now, () => {});
  const histogram = createLatencyHistogram();
  const memoryBefore = memoryUsage();
  const startedMs = now();
  const done = await runWorkers(op, iterations, concurrency, deadlineMs, now, (us) => {
    histogram.recordValue(Math.max(0, Math.round(us)));
  });
  const elapsedMs = now() - startedMs;
  const memoryAfter = memoryUsage();
  return { label, histogram, elapsedMs, capped: done < iterations, memoryBefore, memoryAfter };
}

/** Runs up to `total` ops on `concurrency` workers; resolves with how many completed; rethrows the first error. */
async function runWorkers(
  op: () => Promise<unknown>,
  total: number,
  concurrency: number,
  deadlineMs: number,
  now: () => number,
  record: (us: number) => void,
): Promise<number> {
  let started = 0;
  let completed = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && started < total && now() < deadlineMs) {
      started++;
      const t0 = now();
      try {
        await op();
      } catch (error) {
        failure ??= { error };
        return;
      }
      record((now() - t0) * 1000);
      completed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(total, 1)) }, worker));
  if (failure !== undefined) throw failure.error;
  return completed;
}

/** Options of {@linkcode compare}: each round measures each side once with these bounds. */
export interface CompareOptions extends Pick<MeasureOptions, "concurrency" | "now" | "memoryUsage"> {
  /** @default 3 */
  readonly rounds?: number;
  readonly iterationsPerRound: number;
  /** @default 0 */
  readonly warmupPerRound?: number;
  readonly timeCapMsPerRound: number;
}

/** Rounds per side by default: enough for noise to hit both sides alike, few enough to stay quick. */
export const ROUNDS_DEFAULT = 3;
const ROUNDS_MAX = 100;

/**
 * Measures subject and baseline in interleaved rounds, alternating which goes first (S B, B S, S B, …) so
 * machine noise and the garbage one side leaves behind hit both alike; each side's rounds are merged.
 */
export async function compare(
  subject: Side,
  baseline: Side,
  options: CompareOptions,
): Promise<{ subject: Stats; baseline: Stats }> {
  const rounds = options.rounds ?? ROUNDS_DEFAULT;
  assertCount("rounds", rounds, 1, ROUNDS_MAX);
  const perRound: MeasureOptions = {
    iterations: options.iterationsPerRound,
    warmup: options.warmupPerRound ?? 0,
    concurrency: options.concurrency,
    timeCapMs: options.timeCapMsPerRound,
    now: options.now,
    memoryUsage: options.memoryUsage,
  };
  const subjectRounds: Measurement[] = [];
  const baselineRounds: Measurement[] = [];
  for (let round = 0; round < rounds; round++) {
    const order: [Side, Measurement[]][] = [[subject, subjectRounds], [baseline, baselineRounds]];
    if (round % 2 === 1) order.reverse();
    for (const [side, into] of order) into.push(await measure(side.label, side.op, perRound));
  }
  return { subject: mergeRounds(subjectRounds), baseline: mergeRounds(baselineRounds) };
}

/** Merges the rounds of one side: one histogram, summed time, memory from the first and last round. */
export function mergeRounds(rounds: readonly Measurement[]): Stats {
  if (rounds.length === 0) throw new RangeError("mergeRounds() needs at least one round");
  const merged = createLatencyHistogram();
  for (const round of rounds) merged.add(round.histogram);
  const elapsedMs = rounds.reduce((sum, round) => sum + round.elapsedMs, 0);
  const first = rounds[0];
  const last = rounds[rounds.length - 1];
  return statsFromHistogram(first.label, merged, {
    elapsedMs,
    rounds: rounds.length,
    cappedRounds: rounds.filter((round) => round.capped).length,
    memory: {
      rssBeforeBytes: first.memoryBefore.rss,
      rssAfterBytes: last.memoryAfter.rss,
      heapUsedBeforeBytes: first.memoryBefore.heapUsed,
      heapUsedAfterBytes: last.memoryAfter.heapUsed,
      heapUsedDeltaBytes: rounds.reduce((sum, r) => sum + r.memoryAfter.heapUsed - r.memoryBefore.heapUsed, 0),
    },
  });
}

/** Reads percentiles, max and mean from a histogram of microseconds. */
export function statsFromHistogram(
  label: string,
  histogram: Histogram,
  context: Pick<Stats, "elapsedMs" | "rounds" | "cappedRounds" | "memory">,
): Stats {
  const count = histogram.totalCount;
  const at = (percentile: number) => (count === 0 ? 0 : histogram.getValueAtPercentile(percentile));
  return {
    label,
    count,
    p50Us: at(50),
    p90Us: at(90),
    p99Us: at(99),
    p999Us: at(99.9),
    maxUs: count === 0 ? 0 : histogram.maxValue,
    meanUs: count === 0 ? 0 : round(histogram.mean, 1),
    throughputOpsPerSec: context.elapsedMs > 0 ? round(count / (context.elapsedMs / 1000), 1) : 0,
    elapsedMs: round(context.elapsedMs, 1),
    rounds: context.rounds,
    cappedRounds: context.cappedRounds,
    memory: context.memory,
  };
}

/** subject ÷ baseline for p50, p99 and throughput; null where the baseline is 0 (nothing to divide by). */
export function ratioOf(subject: Stats, baseline: Stats): Ratio {
  const divide = (a: number, b: number) => (b === 0 ? null : round(a / b, 3));
  return {
    p50: divide(subject.p50Us, baseline.p50Us),
    p99: divide(subject.p99Us, baseline.p99Us),
    throughput: divide(subject.throughputOpsPerSec, baseline.throughputOpsPerSec),
  };
}

/** Builds the result a scenario returns from the two merged sides. */
export function resultOf(scenario: string, sides: { subject: Stats; baseline: Stats }): ScenarioResult {
  return { scenario, subject: sides.subject, baseline: sides.baseline, ratio: ratioOf(sides.subject, sides.baseline) };
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function assertCount(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Bench option "${name}" is "${value}"; use a whole number from ${min} to ${max}`);
  }
}
