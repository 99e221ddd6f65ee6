import assert from "node:assert/strict";
import { cleanupOnInterrupt, type InterruptIo, type InterruptSignal } from "./interrupt.ts";

/** Signals raised by hand, exits and log lines recorded. */
function fakeIo() {
  const listeners = new Map<InterruptSignal, Set<() => void>>();
  const exits: number[] = [];
  const lines: string[] = [];
  const io: InterruptIo = {
    addSignalListener: (signal, handler) =>
      void listeners.set(signal, (listeners.get(signal) ?? new Set()).add(handler)),
    removeSignalListener: (signal, handler) => void listeners.get(signal)?.delete(handler),
    exit: (code) => void exits.push(code),
    log: (line) => void lines.push(line),
  };
  const raise = (signal: InterruptSignal) => listeners.get(signal)?.forEach((handler) => handler());
  const listening = () => [...listeners.values()].reduce((n, set) => n + set.size, 0);
  return { io, raise, exits, lines, listening };
}

/** A cleanup that counts its runs and finishes when the test says so. */
function gatedCleanup() {
  let runs = 0;
  let finish = () => {};
  const gate = new Promise<void>((resolve) => finish = resolve);
  return {
    cleanup: async () => {
      runs++;
      await gate;
    },
    runs: () => runs,
    finish: () => finish(),
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("cleanupOnInterrupt() runs the cleanup on SIGINT, then exits 130", async () => {
  const { io, raise, exits } = fakeIo();
  const gated = gatedCleanup();
  const cleanup = cleanupOnInterrupt(gated.cleanup, io);
  raise("SIGINT");
  assert.equal(cleanup.signal.aborted, true);
  assert.equal(cleanup.exitCode, 130);
  await settle();
  assert.deepEqual([gated.runs(), exits], [1, []], "exits only once the cleanup is done");
  gated.finish();
  await settle();
  assert.deepEqual(exits, [130]);
});

Deno.test("cleanupOnInterrupt() joins a cleanup the script already started instead of running it twice", async () => {
  const { io, raise, exits } = fakeIo();
  const gated = gatedCleanup();
  const cleanup = cleanupOnInterrupt(gated.cleanup, io);
  const normal = cleanup.run(); // the script's `finally`
  raise("SIGTERM");
  const again = cleanup.run(); // the script's `finally` reached after the signal
  gated.finish();
  await Promise.all([normal, again]);
  await settle();
  assert.equal(gated.runs(), 1);
  assert.deepEqual(exits, [143]);
});

Deno.test("cleanupOnInterrupt() exits at once on a second signal", async () => {
  const { io, raise, exits, lines } = fakeIo();
  const gated = gatedCleanup();
  cleanupOnInterrupt(gated.cleanup, io);
  raise("SIGINT");
  raise("SIGINT");
  assert.deepEqual(exits, [130]);
  assert.match(lines.at(-1) ?? "", /without waiting for the cleanup/);
  assert.equal(gated.runs(), 1);
  gated.finish();
  await settle();
});

Deno.test("cleanupOnInterrupt() logs a failing cleanup and still exits", async () => {
  const { io, raise, exits, lines } = fakeIo();
  cleanupOnInterrupt(() => Promise.reject(new Error("broker gone")), io);
  raise("SIGINT");
  await settle();
  assert.deepEqual(exits, [130]);
  assert.ok(lines.some((line) => line.includes("broker gone")), lines.join("\n"));
});

Deno.test("cleanupOnInterrupt() leaves the signals alone after dispose() and without one", async () => {
  const { io, exits, listening } = fakeIo();
  const cleanup = cleanupOnInterrupt(() => Promise.resolve(), io);
  assert.equal(listening(), 2);
  await cleanup.run();
  assert.deepEqual([cleanup.exitCode, cleanup.signal.aborted, exits], [undefined, false, []]);
  cleanup.dispose();
  assert.equal(listening(), 0);
});

Deno.test({
  name: "a Deno process interrupted by SIGINT runs its cleanup once and exits 130",
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "bv_interrupt_" });
    try {
      const script = `${dir}/script.ts`;
      await Deno.writeTextFile(
        script,
        `import { cleanupOnInterrupt } from ${JSON.stringify(new URL("./interrupt.ts", import.meta.url).href)};
const cleanup = cleanupOnInterrupt(async () => {
  console.log("cleanup");
  await new Promise((resolve) => setTimeout(resolve, 100));
});
console.log("ready");
try {
  await new Promise((resolve) => setTimeout(resolve, 30_000));
} finally {
  await cleanup.run();
}
Deno.exit(0);
`,
      );
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-check", script],
        stdout: "piped",
        stderr: "null",
        signal: AbortSignal.timeout(20_000),
      }).spawn();
      const decoder = new TextDecoder();
      let out = "";
      const reader = child.stdout.getReader();
      while (!out.includes("ready")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += decoder.decode(value);
      }
      child.kill("SIGINT");
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        out += decoder.decode(value);
      }
      const status = await child.status;
      assert.equal(status.code, 130);
      assert.deepEqual(out.trim().split("\n"), ["ready", "cleanup"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
