/**
 * The lifecycle's signal handlers in a process of their own (`_lifecycle_process_for_test.ts`): SIGTERM
 * waits the drain delay with readiness red, SIGINT (a Ctrl-C) and a second signal do not, and the exit
 * code says whether the stop finished within the grace period.
 */
import assert from "node:assert/strict";

interface Child {
  readonly url: string;
  /** Resolves with the first line of output that contains `text`. */
  line(text: string): Promise<string>;
  readonly exited: Promise<Deno.CommandStatus>;
  kill(signal: Deno.Signal): void;
}

async function spawnLifecycle(graceMs: number, drainDelayMs: number, closer = ""): Promise<Child> {
  const script = new URL("./_lifecycle_process_for_test.ts", import.meta.url).pathname;
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, String(graceMs), String(drainDelayMs), closer],
    cwd: new URL("../../", import.meta.url).pathname,
    // The test waits for the "shutting down" line, an info one.
    env: { BV_LOG_LEVEL: "info" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const line = async (text: string) => {
    for (;;) {
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      const found = lines.findIndex((l) => l.includes(text));
      if (found >= 0) {
        buffered = [...lines.slice(found + 1), buffered].join("\n");
        return lines[found];
      }
      const next = await reader.read();
      if (next.done) throw new Error(`the process ended without printing "${text}"`);
      buffered += next.value;
    }
  };
  const port = (await line("port ")).replace(/^.*port /, "");
  const exited = (async () => {
    const status = await process.status;
    await reader.cancel().catch(() => {});
    return status;
  })();
  return { url: `http://127.0.0.1:${port}`, line, exited, kill: (signal) => process.kill(signal) };
}

Deno.test("SIGTERM keeps serving with readiness red for the drain delay; a second signal hurries; exit 0", async () => {
  const child = await spawnLifecycle(60_000, 30_000);
  child.kill("SIGTERM");
  await child.line('"msg":"shutting down"');
  const ready = await fetch(`${child.url}/readyz`);
  assert.equal(ready.status, 503);
  await ready.body?.cancel();
  const started = performance.now();
  child.kill("SIGTERM");
  const status = await child.exited;
  assert.equal(status.code, 0);
  assert.ok(performance.now() - started < 10_000, "the second signal did not wait out the 30 s delay");
});

Deno.test("SIGINT (Ctrl-C in a terminal) skips the drain delay", async () => {
  const child = await spawnLifecycle(60_000, 30_000);
  const started = performance.now();
  child.kill("SIGINT");
  assert.equal((await child.exited).code, 0);
  assert.ok(performance.now() - started < 10_000, "a Ctrl-C did not wait out the 30 s delay");
});

Deno.test("a process whose grace period runs out with a closer unfinished exits 1", async () => {
  const child = await spawnLifecycle(500, 0, "hang");
  child.kill("SIGTERM");
  assert.equal((await child.exited).code, 1);
});
