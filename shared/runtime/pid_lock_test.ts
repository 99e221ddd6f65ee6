/**
 * `acquirePidLock`, the fail-fast lock of a directory one process at a time may open: on lock files in a
 * temporary folder, with real (harmless) processes as holders.
 */
import assert from "node:assert/strict";
import { acquirePidLock, LockHeldError, readLock } from "./pid_lock.ts";
import { deadPid, withLockFile } from "../testing/lock_files.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("acquirePidLock() refuses at once while a live holder has the lock, naming it, and succeeds after its release", () =>
  withLockFile(async (lockFile) => {
    const first = await acquirePidLock({ lockFile, what: "Directory X" });
    const startedMs = performance.now();
    const refused = await acquirePidLock({ lockFile, what: "Directory X", hint: "stop it first" }).then(
      () => assert.fail("a second holder was let in"),
      (error) => error,
    );
    assert.ok(performance.now() - startedMs < 1_000, "refused without waiting");
    assert.ok(refused instanceof LockHeldError);
    assert.equal(refused.pid, Deno.pid);
    assert.match(
      refused.message,
      new RegExp(`^Directory X is in use by pid ${Deno.pid} \\(.*deno.*\\): stop it first`),
    );
    assert.match(refused.message, new RegExp(`\\(lock file ${lockFile}\\)$`));

    await first.release();
    assert.equal(await exists(lockFile), false, "released");
    const second = await acquirePidLock({ lockFile, what: "Directory X" });
    assert.equal((await readLock(lockFile))?.pid, Deno.pid);
    await second.release();
    await second.release(); // Idempotent.
  }));

Deno.test("acquirePidLock() takes over the lock of a holder that has exited", () =>
  withLockFile(async (lockFile) => {
    const pid = await deadPid();
    await Deno.writeTextFile(lockFile, `${pid} crashed-holder start=1\n`);
    const lines: string[] = [];
    const lock = await acquirePidLock({ lockFile, what: "Directory X", say: (line) => lines.push(line) });
    assert.deepEqual(lines, [
      `taking over the lock of Directory X: its holder, pid ${pid}, is no longer a running deno process (${lockFile})`,
    ]);
    assert.match(await Deno.readTextFile(lockFile), new RegExp(`^${Deno.pid} `));
    await lock.release();
  }));

Deno.test({
  name: "acquirePidLock() takes over a lock whose pid now belongs to a process started after the holder",
  ignore: Deno.build.os !== "linux",
  fn: () =>
    withLockFile(async (lockFile) => {
      // This process's own pid with another start time: the holder died and the kernel gave its pid to us.
      await Deno.writeTextFile(lockFile, `${Deno.pid} earlier-holder start=1\n`);
      const lines: string[] = [];
      const lock = await acquirePidLock({ lockFile, what: "Directory X", say: (line) => lines.push(line) });
      assert.match(lines.join("\n"), /has exited \(the pid now belongs to a process started later\)/);
      await lock.release();
    }),
});

Deno.test("acquirePidLock() takes over a lock left without a pid once it is past the grace", () =>
  withLockFile(async (lockFile) => {
    await Deno.writeTextFile(lockFile, "");
    const past = new Date(Date.now() - 60_000);
    await Deno.utime(lockFile, past, past);
    const lock = await acquirePidLock({ lockFile, what: "Directory X" });
    assert.match(await Deno.readTextFile(lockFile), new RegExp(`^${Deno.pid} `));
    await lock.release();
  }));

Deno.test("acquirePidLock() release leaves a lock that is no longer its own", () =>
  withLockFile(async (lockFile) => {
    const lock = await acquirePidLock({ lockFile, what: "Directory X" });
    await Deno.writeTextFile(lockFile, "1 someone-else\n");
    await lock.release();
    assert.equal(await Deno.readTextFile(lockFile), "1 someone-else\n");
  }));
