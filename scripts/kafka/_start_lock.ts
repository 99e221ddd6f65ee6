/**
 * @module
 * A start lock across processes: a file created exclusively (`createNew`) that names its holder's pid, so two
 * `./bv` commands never start the same server, download the same jars or initdb the same folder at once. A
 * lock is stale — removed, and the caller goes on — when its pid is not a live deno process (the holder died,
 * or left through `Deno.exit`, which skips `finally`) or when it is older than the wait bound. Private to
 * `scripts/kafka/`; `scripts/postgres` uses it too (it would belong in `scripts/_process.ts`).
 */
import { basename } from "node:path";
import { ignoreNotFound, isProcessAlive, seconds, sleep } from "../_process.ts";

/** How often a waiting process looks at the lock again. */
const LOCK_POLL_INTERVAL_MS = 250;
/** A lock that names no pid is still being written by its creator; past this age it never will be. */
const UNWRITTEN_LOCK_GRACE_MS = 5_000;

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
    await removeIfUnchanged(options.lockFile, content);
  }
}

/** A lock file as found: its holder's pid (first word) and how old it is. */
interface HeldLock {
  readonly text: string;
  readonly pid?: number;
  readonly ageMs: number;
}

async function acquire(options: StartLockOptions): Promise<string> {
  const { lockFile, what, waitMs, say } = options;
  // The token tells two holders in one process apart (same pid), so a release never removes another's lock.
  const content = `${Deno.pid} ${crypto.randomUUID()}\n`;
  const startedMs = Date.now();
  let waitingFor: number | undefined;
  for (;;) {
    try {
      await Deno.writeTextFile(lockFile, content, { createNew: true });
      return content;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    const held = await readLock(lockFile);
    if (held === undefined) continue; // Released between our attempt and the read.
    const stale = await staleReason(held, waitMs);
    if (stale !== undefined) {
      say(`taking over the lock of ${what}: ${stale} (${lockFile})`);
      await removeIfUnchanged(lockFile, held.text);
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

async function readLock(lockFile: string): Promise<HeldLock | undefined> {
  try {
    const [text, info] = await Promise.all([Deno.readTextFile(lockFile), Deno.stat(lockFile)]);
    const pid = Number(text.trim().split(/\s+/)[0]);
    return {
      text,
      pid: Number.isInteger(pid) && pid > 0 ? pid : undefined,
      ageMs: Date.now() - (info.mtime?.getTime() ?? Date.now()),
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Why a held lock may be taken over, or undefined while its holder is alive and within the bound. */
async function staleReason(held: HeldLock, waitMs: number): Promise<string | undefined> {
  if (held.pid === undefined) {
    return held.ageMs > UNWRITTEN_LOCK_GRACE_MS ? `it names no pid and is ${seconds(held.ageMs)} old` : undefined;
  }
  if (!(await isDenoProcess(held.pid))) return `its holder, pid ${held.pid}, is no longer a running deno process`;
  if (held.ageMs > waitMs) return `pid ${held.pid} has held it for ${seconds(held.ageMs)}, past ${seconds(waitMs)}`;
  return undefined;
}

/** True when `pid` is alive and runs deno (a reused pid of another program does not hold our lock). */
export async function isDenoProcess(pid: number): Promise<boolean> {
  if (!(await isProcessAlive(pid))) return false;
  const comm = (await Deno.readTextFile(`/proc/${pid}/comm`).catch(() => "")).trim();
  // The kernel keeps the first 15 bytes of the executable's name.
  return comm === "deno" || comm === basename(Deno.execPath()).slice(0, 15);
}

/** Removes `lockFile` only while it still holds `text` (a small window remains between read and remove). */
async function removeIfUnchanged(lockFile: string, text: string): Promise<void> {
  const now = await Deno.readTextFile(lockFile).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (now === text) await Deno.remove(lockFile).catch(ignoreNotFound);
}
