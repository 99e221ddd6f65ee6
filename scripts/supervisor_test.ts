/**
 * The shared supervisor of start:infra and the bench's lean platform, on real child processes: a deployable
 * that exits unasked is started again (at most `restartsMax` times, after its backoff); one stopped by
 * `stop()` is not.
 */
import assert from "node:assert/strict";
import { Supervisor } from "./platform_processes.ts";

/** A script that appends one line to `file` each time it starts, then exits with `code` (or waits, if null). */
async function startCounter(code: number | null): Promise<{ script: string; file: string; starts: () => number }> {
  const dir = await Deno.makeTempDir({ prefix: "bv-supervisor-" });
  const file = `${dir}/starts.log`;
  const script = `${dir}/child.ts`;
  const end = code === null ? "setInterval(() => {}, 1_000);" : `Deno.exit(${code});`;
  await Deno.writeTextFile(
    script,
    `Deno.writeTextFileSync(${JSON.stringify(file)}, "x\\n", { append: true });\n${end}\n`,
  );
  const starts = () => {
    try {
      return Deno.readTextFileSync(file).split("\n").filter(Boolean).length;
    } catch {
      return 0;
    }
  };
  return { script, file, starts };
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

Deno.test("supervisor: a deployable that keeps exiting is restarted restartsMax times, with its backoff, then left", async () => {
  const counter = await startCounter(3);
  const waits: number[] = [];
  const supervisor = new Supervisor({
    label: "supervisor test",
    restartsMax: 2,
    backoffMs: (restart) => {
      waits.push(restart);
      return 50;
    },
  });
  const child = supervisor.start("crasher", counter.script, {});
  await until(() => counter.starts() === 3 && child.restarts === 2, 15_000);
  await child.process.status;
  // Given up: no fourth start.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(counter.starts(), 3);
  assert.deepEqual(waits, [1, 2]);
  await supervisor.stop(1_000);
});

Deno.test("supervisor: stop() ends a running deployable and restarts nothing", async () => {
  const counter = await startCounter(null);
  const supervisor = new Supervisor({ label: "supervisor test", restartsMax: 5, backoffMs: () => 10 });
  const child = supervisor.start("sleeper", counter.script, {});
  await until(() => counter.starts() === 1, 15_000);
  await supervisor.stop(5_000);
  const status = await child.process.status;
  assert.equal(status.success, false, "stopped by a signal");
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(counter.starts(), 1);
  assert.equal(child.restarts, 0);
  assert.deepEqual(supervisor.children.map((c) => c.name), ["sleeper"]);
});
