/**
 * @module
 * The clock thread of {@linkcode createPreciseSleep} (precise_sleep.ts). It shares one buffer with the main
 * thread — `Int32Array` cell 0: wake generation, cell 1: request (0 none, 1 sleep, 2 close); `Float64Array`
 * at byte 8: the absolute deadline (`performance.timeOrigin + performance.now()` ms) — and loops: block in
 * `Atomics.wait` until a request, block again until its deadline (a futex wait: precise to tens of
 * microseconds and free of CPU), bump the generation and `Atomics.notify` it, which resolves the main
 * thread's `Atomics.waitAsync`. It never returns to its event loop until told to close.
 */
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<SharedArrayBuffer>) => void) | null;
  close(): void;
};

scope.onmessage = (event) => {
  const cells = new Int32Array(event.data, 0, 2);
  const deadline = new Float64Array(event.data, 8, 1);
  const block = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    Atomics.wait(cells, 1, 0);
    if (Atomics.load(cells, 1) === 2) break;
    const waitMs = deadline[0] - (performance.timeOrigin + performance.now());
    if (waitMs > 0) Atomics.wait(block, 0, 0, waitMs);
    // Clears the sleep request, but not a close request that arrived during the wait.
    Atomics.compareExchange(cells, 1, 1, 0);
    Atomics.add(cells, 0, 1);
    Atomics.notify(cells, 0);
  }
  scope.close();
};
