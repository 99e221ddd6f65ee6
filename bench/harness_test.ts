import assert from "node:assert/strict";
import {
  compare,
  createLatencyHistogram,
  measure,
  mergeRounds,
  ratioOf,
  resultOf,
  type Stats,
  statsFromHistogram,
} from "./harness.ts";

/** A clock the ops move forward by hand, so latencies and time caps are exact and nothing sleeps. */
function fakeClock() {
  let nowMs = 0;
  return {
    now: () => nowMs,
    advanceMs: (ms: number) => void (nowMs += ms),
  };
}

const memoryUsage = () => ({ rss: 100, heapUsed: 10 });
const noMemory = {
  rssBeforeBytes: 0,
  rssAfterBytes: 0,
  heapUsedBeforeBytes: 0,
  heapUsedAfterBytes: 0,
  heapUsedDeltaBytes: 0,
};

function statsWith(overrides: Partial<Stats>): Stats {
  return {
    ...statsFromHistogram("x", createLatencyHistogram(), {
      elapsedMs: 0,
      rounds: 1,
      cappedRounds: 0,
      memory: noMemory,
    }),
    ...overrides,
  };
}

Deno.test("statsFromHistogram() reads exact percentiles, max and mean from 1…1000 µs", () => {
  const histogram = createLatencyHistogram();
  for (let us = 1; us <= 1000; us++) histogram.recordValue(us);
  const stats = statsFromHistogram("set", histogram, { elapsedMs: 500, rounds: 1, cappedRounds: 0, memory: noMemory });
  assert.equal(stats.count, 1000);
  assert.equal(stats.p50Us, 500);
  assert.equal(stats.p90Us, 900);
  assert.equal(stats.p99Us, 990);
  assert.equal(stats.p999Us, 999);
  assert.equal(stats.maxUs, 1000);
  assert.equal(stats.meanUs, 500.5);
  assert.equal(stats.throughputOpsPerSec, 2000);
});

Deno.test("statsFromHistogram() keeps 2 outliers in 1000 out of p99 and inside p99.9 within 0.1 %", () => {
  const histogram = createLatencyHistogram();
  for (let i = 0; i < 998; i++) histogram.recordValue(100);
  histogram.recordValue(250_000);
  histogram.recordValue(250_000);
  const stats = statsFromHistogram("spiky", histogram, { elapsedMs: 1, rounds: 1, cappedRounds: 0, memory: noMemory });
  assert.equal(stats.p50Us, 100);
  assert.equal(stats.p99Us, 100);
  // Three significant digits: the bucket holding 250000 µs reports its upper edge, at most 0.1 % above.
  assert.ok(Math.abs(stats.p999Us - 250_000) <= 250, `p99.9 was ${stats.p999Us}`);
  assert.equal(stats.maxUs, 250_000);
});

Deno.test("statsFromHistogram() reports zeros, not NaN, for an empty histogram", () => {
  const stats = statsWith({});
  assert.deepEqual([stats.count, stats.p50Us, stats.maxUs, stats.meanUs, stats.throughputOpsPerSec], [0, 0, 0, 0, 0]);
});

Deno.test("ratioOf() divides subject by baseline for p50, p99 and throughput", () => {
  const subject = statsWith({ p50Us: 300, p99Us: 900, throughputOpsPerSec: 500 });
  const baseline = statsWith({ p50Us: 150, p99Us: 600, throughputOpsPerSec: 1500 });
  assert.deepEqual(ratioOf(subject, baseline), { p50: 2, p99: 1.5, throughput: 0.333 });
  assert.deepEqual(resultOf("s", { subject, baseline }).ratio, { p50: 2, p99: 1.5, throughput: 0.333 });
});

Deno.test("ratioOf() gives null where the baseline is zero instead of Infinity", () => {
  const subject = statsWith({ p50Us: 3, p99Us: 5, throughputOpsPerSec: 10 });
  const baseline = statsWith({ p50Us: 0, p99Us: 2, throughputOpsPerSec: 0 });
  assert.deepEqual(ratioOf(subject, baseline), { p50: null, p99: 2.5, throughput: null });
});

Deno.test("measure() records each op's latency in microseconds and skips the warm-up", async () => {
  const clock = fakeClock();
  let calls = 0;
  const measurement = await measure("op", () => {
    calls++;
    clock.advanceMs(0.25);
    return Promise.resolve();
  }, { iterations: 40, warmup: 10, timeCapMs: 60_000, now: clock.now, memoryUsage });
  assert.equal(calls, 50);
  assert.equal(measurement.histogram.totalCount, 40);
  assert.equal(measurement.histogram.getValueAtPercentile(50), 250);
  assert.equal(measurement.elapsedMs, 10);
  assert.equal(measurement.capped, false);
});

Deno.test("measure() starts no op after the time cap and says it was capped", async () => {
  const clock = fakeClock();
  let calls = 0;
  const measurement = await measure("slow", () => {
    calls++;
    clock.advanceMs(10);
    return Promise.resolve();
  }, { iterations: 1_000, timeCapMs: 55, now: clock.now, memoryUsage });
  // Ops start at 0, 10, 20, 30, 40 and 50 ms; at 60 ms the cap (55 ms) has passed.
  assert.equal(calls, 6);
  assert.equal(measurement.histogram.totalCount, 6);
  assert.equal(measurement.capped, true);
});

Deno.test("measure() counts the warm-up against the time cap", async () => {
  const clock = fakeClock();
  const measurement = await measure("slow", () => {
    clock.advanceMs(10);
    return Promise.resolve();
  }, { iterations: 100, warmup: 3, timeCapMs: 50, now: clock.now, memoryUsage });
  assert.equal(measurement.histogram.totalCount, 2);
});

Deno.test("measure() keeps at most `concurrency` ops in flight and runs exactly `iterations`", async () => {
  let inFlight = 0;
  let peak = 0;
  let calls = 0;
  const measurement = await measure("parallel", async () => {
    calls++;
    inFlight++;
    peak = Math.max(peak, inFlight);
    await Promise.resolve();
    inFlight--;
  }, { iterations: 25, concurrency: 4, timeCapMs: 60_000 });
  assert.equal(calls, 25);
  assert.equal(peak, 4);
  assert.equal(measurement.histogram.totalCount, 25);
});

Deno.test("measure() stops and rethrows the first error of an op", async () => {
  let calls = 0;
  await assert.rejects(
    measure("broken", () => {
      calls++;
      return calls === 3 ? Promise.reject(new Error("boom")) : Promise.resolve();
    }, { iterations: 100, timeCapMs: 60_000 }),
    /boom/,
  );
  assert.equal(calls, 3);
});

Deno.test("measure() rejects options that would make an unbounded or empty run", async () => {
  const op = () => Promise.resolve();
  await assert.rejects(measure("x", op, { iterations: 0, timeCapMs: 1 }), RangeError);
  await assert.rejects(measure("x", op, { iterations: 1.5, timeCapMs: 1 }), RangeError);
  await assert.rejects(measure("x", op, { iterations: 1, concurrency: 0, timeCapMs: 1 }), RangeError);
  await assert.rejects(measure("x", op, { iterations: 1, timeCapMs: 0 }), RangeError);
});

Deno.test("compare() interleaves rounds, alternating which side goes first", async () => {
  const calls: string[] = [];
  const side = (label: string) => ({ label, op: () => Promise.resolve(void calls.push(label)) });
  await compare(side("S"), side("B"), { rounds: 3, iterationsPerRound: 5, timeCapMsPerRound: 60_000 });
  // Rounds S|B, B|S, S|B: consecutive runs of the same side merge in the call log.
  assert.deepEqual(runsOf(calls), ["S×5", "B×10", "S×10", "B×5"]);
});

function runsOf(labels: readonly string[]): string[] {
  const runs: { label: string; count: number }[] = [];
  for (const label of labels) {
    const last = runs.at(-1);
    if (last?.label === label) last.count++;
    else runs.push({ label, count: 1 });
  }
  return runs.map(({ label, count }) => `${label}×${count}`);
}

Deno.test("compare() merges each side's rounds into one histogram and reports the ratio", async () => {
  const clock = fakeClock();
  let subjectCalls = 0;
  const sides = await compare(
    {
      label: "port",
      // Round 1 ops take 10 µs, round 2 20 µs, round 3 30 µs.
      op: () => {
        clock.advanceMs(0.01 * (Math.floor(subjectCalls++ / 10) + 1));
        return Promise.resolve();
      },
    },
    {
      label: "raw",
      op: () => {
        clock.advanceMs(0.01);
        return Promise.resolve();
      },
    },
    { rounds: 3, iterationsPerRound: 10, timeCapMsPerRound: 60_000, now: clock.now, memoryUsage },
  );
  assert.equal(sides.subject.count, 30);
  assert.equal(sides.subject.rounds, 3);
  assert.equal(sides.subject.p50Us, 20);
  assert.equal(sides.subject.maxUs, 30);
  assert.equal(sides.subject.meanUs, 20);
  assert.equal(sides.baseline.p50Us, 10);
  // 30 ops in 0.6 ms of measured time vs 30 ops in 0.3 ms.
  assert.equal(sides.subject.throughputOpsPerSec, 50_000);
  assert.equal(sides.baseline.throughputOpsPerSec, 100_000);
  assert.deepEqual(ratioOf(sides.subject, sides.baseline), { p50: 2, p99: 3, throughput: 0.5 });
});

Deno.test("mergeRounds() sums time, counts capped rounds and spans memory from first to last round", () => {
  const round = (us: number, elapsedMs: number, capped: boolean, heap: [number, number]) => {
    const histogram = createLatencyHistogram();
    histogram.recordValue(us);
    return {
      label: "side",
      histogram,
      elapsedMs,
      capped,
      memoryBefore: { rss: 1_000 + heap[0], heapUsed: heap[0] },
      memoryAfter: { rss: 1_000 + heap[1], heapUsed: heap[1] },
    };
  };
  const stats = mergeRounds([round(100, 2, false, [10, 30]), round(300, 3, true, [25, 20])]);
  assert.equal(stats.count, 2);
  assert.equal(stats.elapsedMs, 5);
  assert.equal(stats.cappedRounds, 1);
  assert.equal(stats.maxUs, 300);
  assert.deepEqual(stats.memory, {
    rssBeforeBytes: 1_010,
    rssAfterBytes: 1_020,
    heapUsedBeforeBytes: 10,
    heapUsedAfterBytes: 20,
    heapUsedDeltaBytes: 15,
  });
  assert.throws(() => mergeRounds([]), RangeError);
});
