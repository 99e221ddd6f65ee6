/**
 * `terminate` and `livePid`, the stop path shared by the brokers (`stopKafka`) and MirrorMaker
 * (`stopMirrorMaker`), `run`'s bound and `portHolder`, on real child processes (`sleep`) and a listener of
 * the test's own, so no broker is touched.
 */
import assert from "node:assert/strict";
import { argvOf, exists, isProcessAlive, livePid, portHolder, run, terminate } from "./_process.ts";

/** A child running `sleep <seconds>` (the number tells tests apart); with `ignoreTerm` it ignores SIGTERM (inherited across exec). */
async function sleeper(seconds: number, ignoreTerm: boolean): Promise<{ pid: number; pidFile: string }> {
  const script = `${ignoreTerm ? "trap '' TERM; " : ""}exec sleep ${seconds}`;
  const child = new Deno.Command("sh", { args: ["-c", script], stdout: "null", stderr: "null" }).spawn();
  // The shell's own command line already names `sleep`; only its comm shows the exec (and the trap) happened.
  for (let tries = 0; (await Deno.readTextFile(`/proc/${child.pid}/comm`)).trim() !== "sleep"; tries++) {
    if (tries > 100) throw new Error(`sleep ${seconds} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const pidFile = await Deno.makeTempFile({ suffix: ".pid" });
  await Deno.writeTextFile(pidFile, `${child.pid}\n`);
  // Reap the child whichever way it ends, so it does not stay a zombie.
  child.status.catch(() => {});
  return { pid: child.pid, pidFile };
}

Deno.test("livePid() names a live process only when its command line matches", async () => {
  const { pid, pidFile } = await sleeper(41, false);
  try {
    assert.equal(await livePid(pidFile, "sleep 41"), pid);
    assert.equal(await livePid(pidFile, "server.properties"), undefined, "a reused pid is not ours");
  } finally {
    await terminate(pid, { pidFile, mustContain: "sleep 41", graceMs: 2_000, pollIntervalMs: 20, say: () => {} });
  }
  assert.equal(await livePid(pidFile, "sleep 41"), undefined, "no pid file, no pid");
});

Deno.test("terminate() stops a process with SIGTERM and removes its pid file", async () => {
  const { pid, pidFile } = await sleeper(42, false);
  const lines: string[] = [];
  await terminate(pid, {
    pidFile,
    mustContain: "sleep 42",
    graceMs: 5_000,
    pollIntervalMs: 20,
    say: (line) => lines.push(line),
  });
  assert.equal(await isProcessAlive(pid, "sleep 42"), false);
  assert.equal(await exists(pidFile), false);
  assert.ok(!lines.some((line) => line.includes("SIGKILL")), lines.join("\n"));
  assert.match(lines.at(-1) ?? "", /^stopped after \d+\.\d s$/);
});

Deno.test("terminate() sends SIGKILL to a process that ignores SIGTERM for longer than graceMs", async () => {
  const { pid, pidFile } = await sleeper(43, true);
  const lines: string[] = [];
  await terminate(pid, {
    pidFile,
    mustContain: "sleep 43",
    graceMs: 300,
    pollIntervalMs: 20,
    progressEveryMs: 100,
    say: (line) => lines.push(line),
  });
  assert.equal(await isProcessAlive(pid, "sleep 43"), false);
  assert.equal(await exists(pidFile), false);
  assert.ok(lines.includes("still running after 0.3 s; sending SIGKILL"), lines.join("\n"));
  assert.ok(lines.some((line) => line.startsWith("waiting for a clean shutdown")), lines.join("\n"));
});

Deno.test("run() stops a command that outlives its bound and names the command and the bound", async () => {
  const startedMs = performance.now();
  await assert.rejects(
    run("sleep", ["44"], { timeoutMs: 200, timeoutName: "SOME_TIMEOUT_MS_DEFAULT" }),
    /^Error: "sleep 44" did not finish within 0\.2 s \(SOME_TIMEOUT_MS_DEFAULT\) and was stopped/,
  );
  assert.ok(performance.now() - startedMs < 5_000, `took ${performance.now() - startedMs} ms`);
  assert.equal(await run("echo", ["done"], { timeoutMs: 10_000 }), "done\n");
  await assert.rejects(run("false", [], { timeoutMs: 10_000 }), /^Error: "false" exited with 1/);
});

Deno.test("portHolder() names the process listening on a port, and nothing on a closed one", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  try {
    const holder = await portHolder(port);
    assert.equal(holder?.pid, Deno.pid);
    assert.deepEqual(argvOf(holder?.cmdline ?? ""), argvOf(await Deno.readTextFile("/proc/self/cmdline")));
  } finally {
    listener.close();
  }
  assert.equal(await portHolder(port), undefined);
});
