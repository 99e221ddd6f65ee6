import assert from "node:assert/strict";
import { measure } from "./harness.ts";
import { compareAtRate, measureAtRate } from "./open_loop.ts";

/**
 * Virtual time: `sleep(ms)` parks a timer; `run()` lets every pending promise settle, then jumps the clock
 * to the earliest timer and fires it, until the work under test is done. Nothing really sleeps, and
 * latencies come out exact.
 */
function virtualTime() {
  let nowMs = 0;
  let sequence = 0;
  const timers: { atMs: number; seq: number; fire: () => void }[] = [];
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => timers.push({ atMs: nowMs + Math.max(0, ms), seq: sequence++, fire: resolve }));
  // Lets every promise chain that can move settle: far more microtask turns than any chain here is deep.
  const settle = async () => {
    for (let turn = 0; turn < 100; turn++) await null;
  };
  return {
    now: () => nowMs,
    sleep,
    /** Moves the clock without yielding: the event loop was busy this long. */
    busyMs: (ms: number) => void (nowMs += ms),
    async run<T>(work: Promise<T>): Promise<T> {
      let done = false;
      work.then(() => done = true, () => done = true);
      for (;;) {
        await settle();
        if (done) return await work;
        if (timers.length === 0) throw new Error("virtual time: nothing left to run and the work is not done");
        timers.sort((a, b) => a.atMs - b.atMs || a.seq - b.seq);
        const next = timers.shift()!;
        nowMs = Math.max(nowMs, next.atMs);
        next.fire();
      }
    },
  };
}

const memoryUsage = () => ({ rss: 100, heapUsed: 10 });

Deno.test("measureAtRate() starts requests on schedule and records each latency from its slot", async () => {
  const clock = virtualTime();
  const starts: number[] = [];
  const m = await clock.run(measureAtRate("fixed", () => {
    starts.push(clock.now());
    return clock.sleep(2);
  }, { ratePerSec: 1000, durationMs: 100, maxInFlight: 10, now: clock.now, sleep: clock.sleep, memoryUsage }));
  assert.equal(m.scheduled, 100);
  assert.equal(m.histogram.totalCount, 100);
  assert.deepEqual(starts, Array.from({ length: 100 }, (_, i) => i));
  assert.equal(m.histogram.minNonZeroValue, 2000);
  assert.equal(m.histogram.maxValue, 2000);
  assert.equal(m.dropped, 0);
  assert.equal(m.late, 0);
  // From the first slot to the last completion: 99 ms of slots + 2 ms of the last request … bounded by the
  // schedule's end (100 ms) or later.
  assert.equal(m.elapsedMs, 101);
});

Deno.test("measureAtRate() does not record the warm-up slots", async () => {
  const clock = virtualTime();
  let calls = 0;
  const m = await clock.run(measureAtRate("warm", () => {
    calls++;
    return clock.sleep(1);
  }, {
    ratePerSec: 500,
    durationMs: 100,
    warmupMs: 40,
    maxInFlight: 4,
    now: clock.now,
    sleep: clock.sleep,
    memoryUsage,
  }));
  assert.equal(calls, 70);
  assert.equal(m.scheduled, 50);
  assert.equal(m.histogram.totalCount, 50);
});

Deno.test("measureAtRate() keeps a stall's queue in the percentiles where a closed loop hides it", async () => {
  // A server that handles one request at a time in 0.5 ms, and stalls 100 ms once, at its 200th request.
  const server = (clock: ReturnType<typeof virtualTime>) => {
    let queue = Promise.resolve();
    let handled = 0;
    return () => {
      const turn = queue.then(() => clock.sleep(++handled === 200 ? 100 : 0.5));
      queue = turn;
      return turn;
    };
  };
  const open = virtualTime();
  const m = await open.run(measureAtRate("open", server(open), {
    ratePerSec: 1000,
    durationMs: 1000,
    maxInFlight: 1000,
    now: open.now,
    sleep: open.sleep,
    memoryUsage,
  }));
  assert.equal(m.histogram.totalCount, 1000);
  // Every request that arrived during the stall waited for it: about 100 of them (10 %) over 10 ms.
  assert.ok(m.histogram.getValueAtPercentile(91) > 10_000, `p91 ${m.histogram.getValueAtPercentile(91)} µs`);
  assert.ok(m.histogram.maxValue >= 99_000, `max ${m.histogram.maxValue} µs`);

  // The same server under a closed loop: the stall is one slow sample, p95 stays at the service time.
  const closed = virtualTime();
  const c = await closed.run(measure("closed", server(closed), {
    iterations: 1000,
    concurrency: 1,
    timeCapMs: 10_000,
    now: closed.now,
    memoryUsage,
  }));
  assert.equal(c.histogram.getValueAtPercentile(95), 500);
});

Deno.test("measureAtRate() drops arrivals while maxInFlight requests are outstanding", async () => {
  const clock = virtualTime();
  let started = 0;
  const m = await clock.run(measureAtRate("slow", () => {
    started++;
    return clock.sleep(10);
  }, { ratePerSec: 1000, durationMs: 100, maxInFlight: 2, now: clock.now, sleep: clock.sleep, memoryUsage }));
  assert.equal(m.scheduled, 100);
  assert.equal(m.dropped + m.histogram.totalCount, 100);
  assert.equal(started, m.histogram.totalCount);
  // Two in flight for 10 ms each: about 2 starts per 10 slots.
  assert.ok(m.dropped >= 75 && m.dropped <= 82, `dropped ${m.dropped}`);
});

Deno.test("measureAtRate() counts requests started late when the generator fell behind", async () => {
  const clock = virtualTime();
  let calls = 0;
  const m = await clock.run(measureAtRate("busy", () => {
    // The 10th call (slot 9, at 9 ms) blocks the event loop for 20 ms: the slots behind it start late, together.
    if (++calls === 10) clock.busyMs(20);
    return clock.sleep(1);
  }, {
    ratePerSec: 1000,
    durationMs: 100,
    maxInFlight: 100,
    lateAfterMs: 5,
    now: clock.now,
    sleep: clock.sleep,
    memoryUsage,
  }));
  // Slots 10…29 were due during the block (it ends at 29 ms); those more than 5 ms overdue (10…23) are late.
  assert.equal(m.late, 14);
  assert.equal(m.dropped, 0);
  assert.equal(m.histogram.totalCount, 100);
  // Latency is from the slot: slot 9 (due at 9 ms) ends at 30 ms after the block and its 1 ms of work.
  assert.equal(m.histogram.maxValue, 21_000);
});

Deno.test("measureAtRate() rethrows the first error of the operation after the requests in flight finish", async () => {
  const clock = virtualTime();
  let calls = 0;
  await assert.rejects(
    clock.run(measureAtRate("failing", async () => {
      await clock.sleep(1);
      if (++calls === 5) throw new Error("boom at 5");
    }, { ratePerSec: 1000, durationMs: 100, maxInFlight: 10, now: clock.now, sleep: clock.sleep, memoryUsage })),
    /boom at 5/,
  );
  assert.ok(calls < 20, `scheduling should stop soon after the failure, ran ${calls}`);
});

Deno.test('measureAtRate() with onError "count" records failures with their latency and keeps the schedule', async () => {
  const clock = virtualTime();
  let calls = 0;
  const m = await clock.run(measureAtRate("flaky", async () => {
    await clock.sleep(3);
    if (++calls % 10 === 0) throw new Error(`503 at ${calls}`);
  }, {
    ratePerSec: 1000,
    durationMs: 100,
    maxInFlight: 10,
    onError: "count",
    now: clock.now,
    sleep: clock.sleep,
    memoryUsage,
  }));
  assert.equal(m.histogram.totalCount, 100);
  assert.equal(m.failed, 10);
  assert.equal(m.firstError, "503 at 10");
  assert.equal(m.histogram.maxValue, 3000);
});

Deno.test("measureAtRate() fails when requests are still in flight after the drain timeout", async () => {
  const clock = virtualTime();
  await assert.rejects(
    clock.run(measureAtRate("hung", () => clock.sleep(60_000), {
      ratePerSec: 100,
      durationMs: 50,
      maxInFlight: 10,
      drainTimeoutMs: 1_000,
      now: clock.now,
      sleep: clock.sleep,
      memoryUsage,
    })),
    /still in flight 1000 ms after the schedule ended/,
  );
});

Deno.test("measureAtRate() refuses bounds that make no sense", async () => {
  const op = () => Promise.resolve();
  await assert.rejects(measureAtRate("x", op, { ratePerSec: 0, durationMs: 10, maxInFlight: 1 }), /ratePerSec is "0"/);
  await assert.rejects(measureAtRate("x", op, { ratePerSec: 10, durationMs: -1, maxInFlight: 1 }), /durationMs/);
  await assert.rejects(measureAtRate("x", op, { ratePerSec: 10, durationMs: 10, maxInFlight: 0 }), /maxInFlight/);
});

Deno.test("compareAtRate() alternates the sides and names rate, drops and late starts in the labels", async () => {
  const clock = virtualTime();
  const calls: string[] = [];
  const side = (label: string) => ({
    label,
    op: () => {
      calls.push(label);
      return clock.sleep(1);
    },
  });
  const sides = await clock.run(compareAtRate(side("S"), side("B"), {
    ratePerSec: 200,
    durationMsPerRound: 50,
    maxInFlight: 4,
    now: clock.now,
    sleep: clock.sleep,
    memoryUsage,
  }));
  // 10 requests per round (50 ms at 200/s): S B, B S, S B.
  const rounds = Array.from({ length: calls.length / 10 }, (_, i) => [...new Set(calls.slice(i * 10, i * 10 + 10))]);
  assert.deepEqual(rounds, [["S"], ["B"], ["B"], ["S"], ["S"], ["B"]]);
  assert.equal(sides.subject.count, 30);
  assert.equal(sides.subject.rounds, 3);
  assert.equal(sides.subject.label, "S @200/s, 0 dropped, 0 late");
  assert.equal(sides.baseline.label, "B @200/s, 0 dropped, 0 late");
  assert.equal(sides.subject.p50Us, 1000);
});
