/**
 * @module
 * Helpers of the pid-lock tests (`shared/runtime/pid_lock_test.ts`, `scripts/kafka/start_lock_test.ts`).
 */

/** Runs `test` with a lock file path in a temporary folder, removed afterwards. */
export async function withLockFile(test: (lockFile: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bv_lock_test_" });
  try {
    await test(`${dir}/test.lock`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The pid of a process that has exited and been reaped, as a crashed holder's (or `Deno.exit`'s) lock names. */
export async function deadPid(): Promise<number> {
  const child = new Deno.Command("true", { stdout: "null", stderr: "null" }).spawn();
  await child.status;
  return child.pid;
}
