/**
 * `withStartLock`, the cross-process start lock of the brokers, MirrorMaker, the jar download and the
 * PostgreSQL clusters: on lock files in a temporary folder, with real (harmless) processes as holders.
 */
import assert from "node:assert/strict";
import { exists } from "./_process.ts";
import { isDenoProcess, withStartLock } from "./_start_lock.ts";
import { deadPid, withLockFile } from "../../shared/testing/lock_files.ts";

Deno.test("withStartLock() takes over at once a lock whose pid has exited", () =>
  withLockFile(async (lockFile) => {
    const pid = await deadPid();
    await Deno.writeTextFile(lockFile, `${pid}\n`);
    const lines: string[] = [];
    const startedMs = performance.now();
    // A 100 s bound, as MirrorMaker's: the old lock made the next start wait all of it.
    const result = await withStartLock(
      { lockFile, what: "starting X", waitMs: 100_000, say: (line) => lines.push(line) },
      async () => {
        assert.match(await Deno.readTextFile(lockFile), new RegExp(`^${Deno.pid} `), "held by this process now");
        return "worked";
      },
    );
    assert.equal(result, "worked");
    assert.ok(performance.now() - startedMs < 2_000, `took ${performance.now() - startedMs} ms`);
    assert.deepEqual(lines, [
      `taking over the lock of starting X: its holder, pid ${pid}, is no longer a running deno process (${lockFile})`,
    ]);
    assert.equal(await exists(lockFile), false, "released");
  }));

Deno.test("withStartLock() takes over a lock whose pid now runs another program", () =>
  withLockFile(async (lockFile) => {
    const sleeper = new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" }).spawn();
    try {
      await Deno.writeTextFile(lockFile, `${sleeper.pid}\n`);
      assert.equal(await isDenoProcess(sleeper.pid), false);
      assert.equal(await isDenoProcess(Deno.pid), true);
      const lines: string[] = [];
      await withStartLock({ lockFile, what: "starting X", waitMs: 100_000, say: (l) => lines.push(l) }, async () => {});
      assert.match(lines.join("\n"), new RegExp(`pid ${sleeper.pid}, is no longer a running deno process`));
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
    }
  }));

Deno.test("withStartLock() waits while a live deno process holds the lock, then takes it", () =>
  withLockFile(async (lockFile) => {
    await Deno.writeTextFile(lockFile, `${Deno.pid} held-by-another-caller\n`);
    const releasedMs = performance.now() + 400;
    setTimeout(() => Deno.removeSync(lockFile), 400);
    const lines: string[] = [];
    const ranMs = await withStartLock(
      { lockFile, what: "starting X", waitMs: 100_000, say: (l) => lines.push(l) },
      () => Promise.resolve(performance.now()),
    );
    assert.ok(ranMs >= releasedMs - 5, "ran only after the holder released");
    assert.deepEqual(lines, [`another process (pid ${Deno.pid}) is starting X; waiting`]);
  }));

Deno.test("withStartLock() runs concurrent callers one at a time", () =>
  withLockFile(async (lockFile) => {
    const events: string[] = [];
    const caller = (name: string) =>
      withStartLock({ lockFile, what: "starting X", waitMs: 100_000, say: () => {} }, async () => {
        events.push(`${name} in`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        events.push(`${name} out`);
      });
    await Promise.all([caller("a"), caller("b")]);
    assert.deepEqual(events, ["a in", "a out", "b in", "b out"]);
  }));

Deno.test("withStartLock() takes over a live holder's lock once it is older than the bound", () =>
  withLockFile(async (lockFile) => {
    await Deno.writeTextFile(lockFile, `${Deno.pid} stuck-caller\n`);
    const lines: string[] = [];
    await withStartLock({ lockFile, what: "starting X", waitMs: 300, say: (l) => lines.push(l) }, async () => {});
    assert.match(lines.at(-1) ?? "", new RegExp(`pid ${Deno.pid} has held it for 0\\.\\d s, past 0\\.3 s`));
  }));

Deno.test("withStartLock() gives up after its bound with an error naming the holder and the lock", () =>
  withLockFile(async (lockFile) => {
    await Deno.writeTextFile(lockFile, `${Deno.pid} renewing-caller\n`);
    // A lock that stays young (as one renewed by a stream of holders) is never taken over: the wait must end.
    const future = new Date(Date.now() + 60_000);
    await Deno.utime(lockFile, future, future);
    await assert.rejects(
      withStartLock({ lockFile, what: "starting X", waitMs: 300, hint: "see x.log", say: () => {} }, async () => {}),
      new RegExp(
        `^Error: Another process \\(pid ${Deno.pid}\\) has been starting X for more than 0\\.3 s; ` +
          `its lock is ${lockFile}; see x\\.log$`,
      ),
    );
  }));

Deno.test("withStartLock() releases only its own lock", () =>
  withLockFile(async (lockFile) => {
    await withStartLock({ lockFile, what: "starting X", waitMs: 100_000, say: () => {} }, async () => {
      // As if this holder overran its bound and another process took the lock over.
      await Deno.writeTextFile(lockFile, "1 someone-else\n");
    });
    assert.equal(await Deno.readTextFile(lockFile), "1 someone-else\n");
  }));
