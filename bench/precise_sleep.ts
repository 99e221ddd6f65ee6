/**
 * @module
 * A sleep for open-loop load that wakes within tens of microseconds of its deadline.
 *
 * Deno's timers round up to whole milliseconds and then some: `setTimeout(r, 0)` resolves after about
 * 2.1 ms here, so a generator that sleeps on them starts a 2,000/s schedule (a slot every 0.5 ms) in
 * bursts every ~2 ms, and every latency measured from its slot carries up to 2 ms of the generator's own
 * lateness — measured with a no-op operation at 2,000/s: p50 1.08 ms, p99 2.15 ms; with this sleep 0.10–0.11
 * ms and 0.26–0.28 ms. The main thread cannot block (its event loop also drives the sockets being timed), so
 * a short wait goes to a clock thread that blocks in `Atomics.wait` until the deadline and then
 * `Atomics.notify`s the main thread's `Atomics.waitAsync`. Waits longer than {@linkcode TIMER_SLACK_MS} sleep
 * on `setTimeout` for the part the timer can do. Cost: about 60 µs of CPU per wake (both threads), 0.1 core
 * at 2,000/s — paid by subject and baseline alike.
 */

/** Longer waits sleep on `setTimeout` for all but this much (the timer's own lateness, with margin). */
export const TIMER_SLACK_MS = 3;
const READY_TIMEOUT_MS = 5_000;

export interface PreciseSleep {
  /** Resolves about `ms` milliseconds from now (not before). */
  sleep(ms: number): Promise<void>;
  /** Stops the clock thread; pending sleeps resolve at once. */
  close(): void;
}

/** Starts the clock thread (answers one probe before resolving, so the first sleep is not its start-up). */
export async function createPreciseSleep(): Promise<PreciseSleep> {
  const shared = new SharedArrayBuffer(16);
  const cells = new Int32Array(shared, 0, 2);
  const deadline = new Float64Array(shared, 8, 1);
  const worker = new Worker(new URL("./precise_sleep_worker.ts", import.meta.url), { type: "module" });
  worker.postMessage(shared);
  let closed = false;
  // One short wait at a time (the buffer holds one deadline); a second caller waits its turn.
  let turn: Promise<void> = Promise.resolve();
  const untilClock = async (wakeAt: number) => {
    if (closed) return;
    const generation = Atomics.load(cells, 0);
    deadline[0] = wakeAt;
    Atomics.store(cells, 1, 1);
    Atomics.notify(cells, 1);
    // Resolves on the clock thread's notify; "not-equal" (synchronous) when it already bumped the generation.
    const wait = Atomics.waitAsync(cells, 0, generation);
    if (wait.async) await wait.value;
  };
  const close = () => {
    if (closed) return;
    closed = true;
    Atomics.store(cells, 1, 2);
    Atomics.notify(cells, 1);
    // Wakes a pending waitAsync; the thread exits its loop on the close request.
    Atomics.add(cells, 0, 1);
    Atomics.notify(cells, 0);
    setTimeout(() => worker.terminate(), 100);
  };
  let readyTimer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      untilClock(0),
      new Promise((_, reject) => {
        readyTimer = setTimeout(() => reject(new Error("precise sleep: clock thread did not start")), READY_TIMEOUT_MS);
      }),
    ]);
  } catch (error) {
    close();
    throw error;
  } finally {
    clearTimeout(readyTimer);
  }
  return {
    async sleep(ms: number) {
      const wakeAt = performance.timeOrigin + performance.now() + ms;
      if (ms > TIMER_SLACK_MS) await new Promise<void>((resolve) => setTimeout(resolve, ms - TIMER_SLACK_MS));
      if (performance.timeOrigin + performance.now() >= wakeAt) return;
      const mine = turn.then(() => untilClock(wakeAt));
      turn = mine;
      await mine;
    },
    close,
  };
}
