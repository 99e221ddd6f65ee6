/**
 * @module
 * A start lock across processes: a pid lock file (`shared/runtime/pid_lock.ts`: created exclusively, naming
 * its holder) so two `./bv` commands never start the same server, download the same jars or initdb the same
 * folder at once. A lock is stale — removed, and the caller goes on — when its holder is gone (died, or left
 * through `Deno.exit`, which skips `finally`) or when it is older than the wait bound; meanwhile the caller
 * waits. Private to `scripts/kafka/`; `scripts/postgres` uses it too (it would belong in `scripts/_process.ts`).
 */
import { goneReason, isDenoProcess, readLock, releaseLock, tryCreateLock } from "../../shared/runtime/pid_lock.ts";
import { seconds, sleep } from "../_process.ts";

export { isDenoProcess };

/** How often a waiting process looks at the lock again. */
const LOCK_POLL_INTERVAL_MS = 250;

/** What `withStartLock` guards and how long it may wait. */
export interface StartLockOptions {
  readonly lockFile: string;
  /** What the holder is doing, for messages: `starting Kafka east`. */
  readonly what: string;
  /**
   * How long to wait for a live holder before giving up; a lock older than this is taken over. Must exceed
   * the bound of the guarded work itself, or a slow but healthy holder loses its lock.
   */
  readonly waitMs: number;
  /** Appended to the error when the wait runs out, e.g. the log file to look at. */
  readonly hint?: string;
  readonly say: (line: string) => void;
}

/** Runs `work` holding `options.lockFile`; waits (bounded) while another live process holds it. */
export async function withStartLock<T>(options: StartLockOptions, work: () => Promise<T>): Promise<T> {
  const content = await acquire(options);
  try {
    return await work();
  } finally {
    // Only our own lock: a holder that overran `waitMs` may have been replaced by another process.
    await releaseLock(options.lockFile, content);
  }
}

async function acquire(options: StartLockOptions): Promise<string> {
  const { lockFile, what, waitMs, say } = options;
  const startedMs = Date.now();
  let waitingFor: number | undefined;
  for (;;) {
    const content = await tryCreateLock(lockFile);
    if (content !== undefined) return content;
    const held = await readLock(lockFile);
    if (held === undefined) continue; // Released between our attempt and the read.
    const stale = (await goneReason(held)) ??
      (held.pid !== undefined && held.ageMs > waitMs
        ? `pid ${held.pid} has held it for ${seconds(held.ageMs)}, past ${seconds(waitMs)}`
        : undefined);
    if (stale !== undefined) {
      say(`taking over the lock of ${what}: ${stale} (${lockFile})`);
      await releaseLock(lockFile, held.text);
      continue;
    }
    // Reached only when the lock stays young, as one passed along a stream of holders would.
    if (Date.now() - startedMs > waitMs) {
      throw new Error(
        `Another process (pid ${held.pid ?? "unknown"}) has been ${what} for more than ${seconds(waitMs)}; ` +
          `its lock is ${lockFile}${options.hint ? `; ${options.hint}` : ""}`,
      );
    }
    if (waitingFor !== held.pid) say(`another process (pid ${held.pid ?? "not written yet"}) is ${what}; waiting`);
    waitingFor = held.pid;
    await sleep(LOCK_POLL_INTERVAL_MS);
  }
}
