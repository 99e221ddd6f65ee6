/**
 * @module
 * Locks across processes as pid files. A lock is a file created exclusively (O_EXCL, `createNew`) that names
 * its holder: pid, a token (tells two holders in one process apart, so a release never removes another's
 * lock) and, on Linux, the holder's start time (a pid the kernel later gives to another process does not
 * hold the lock). A lock whose holder is gone — it crashed, was SIGKILLed, or left through `Deno.exit`, which
 * skips `finally` — is stale and is taken over; a live holder's never is.
 *
 * Two ways to take one: {@linkcode acquirePidLock} refuses at once while a live process holds the lock (the
 * embedded region data directories, held for a process's whole life); `scripts/kafka/_start_lock.ts` builds
 * a bounded wait on the same parts (a server start, held for seconds).
 *
 * Known gap: taking over a stale lock is read-compare-remove, so two processes taking over the same dead
 * holder's lock in the same few microseconds could both succeed. A held lock is never affected.
 */
import { basename } from "node:path";

/** A lock that names no pid is still being written by its creator; past this age it never will be. */
export const UNWRITTEN_LOCK_GRACE_MS = 5_000;
/** How often {@linkcode acquirePidLock} looks again at a lock whose creator has not written its pid yet. */
const UNWRITTEN_LOCK_POLL_MS = 50;
/** Bound on the holder's command line quoted in an error. */
const COMMAND_CHARS_MAX = 200;

/** A lock file as found: its holder (first word: pid) and how old it is. */
export interface FoundLock {
  readonly text: string;
  readonly pid?: number;
  /** The holder's start time in clock ticks since boot (Linux `/proc/<pid>/stat` field 22), when recorded. */
  readonly startTicks?: string;
  readonly ageMs: number;
}

/** A lock this process holds. */
export interface PidLock {
  readonly lockFile: string;
  /** Removes the lock if it is still ours (idempotent). */
  release(): Promise<void>;
}

/** Thrown by {@linkcode acquirePidLock} while a live process holds the lock. */
export class LockHeldError extends Error {
  override readonly name = "LockHeldError";
  constructor(
    message: string,
    readonly lockFile: string,
    /** The holder's pid (undefined while its creator is still writing it). */
    readonly pid: number | undefined,
  ) {
    super(message);
  }
}

export interface AcquirePidLockOptions {
  readonly lockFile: string;
  /** What the lock guards, for messages: `Data directory ".data/embedded/east"`. */
  readonly what: string;
  /** Appended to the refusal: what to do about the holder. */
  readonly hint?: string;
  /** Told when a stale lock is taken over. @default nothing is said */
  readonly say?: (line: string) => void;
}

/**
 * Takes `lockFile` now, taking over a lock whose holder is gone; throws {@linkcode LockHeldError} naming the
 * holder while a live process (this one included) holds it. Waits only while a new lock's creator has not
 * written its pid yet ({@linkcode UNWRITTEN_LOCK_GRACE_MS} at most).
 */
export async function acquirePidLock(options: AcquirePidLockOptions): Promise<PidLock> {
  const { lockFile, what, say } = options;
  const startedMs = Date.now();
  for (;;) {
    const content = await tryCreateLock(lockFile);
    if (content !== undefined) return { lockFile, release: () => releaseLock(lockFile, content) };
    const found = await readLock(lockFile);
    if (found === undefined) continue; // Released between our attempt and the read.
    const gone = await goneReason(found);
    if (gone !== undefined) {
      say?.(`taking over the lock of ${what}: ${gone} (${lockFile})`);
      await releaseLock(lockFile, found.text);
      continue;
    }
    // The own-clock bound covers a lock whose mtime lies in the future (its age would never grow).
    if (found.pid === undefined && Date.now() - startedMs <= UNWRITTEN_LOCK_GRACE_MS) {
      await new Promise((resolve) => setTimeout(resolve, UNWRITTEN_LOCK_POLL_MS));
      continue;
    }
    const command = found.pid === undefined ? undefined : await commandOf(found.pid);
    const holder = found.pid === undefined ? "a process that has not written its pid" : `pid ${found.pid}`;
    throw new LockHeldError(
      `${what} is in use by ${holder}${command ? ` (${command})` : ""}${options.hint ? `: ${options.hint}` : ""} ` +
        `(lock file ${lockFile})`,
      lockFile,
      found.pid,
    );
  }
}

/** One attempt to create `lockFile` naming this process; its content, or undefined when it exists already. */
export async function tryCreateLock(lockFile: string): Promise<string | undefined> {
  const start = await ownStartTicks();
  const content = `${Deno.pid} ${crypto.randomUUID()}${start === undefined ? "" : ` start=${start}`}\n`;
  try {
    await Deno.writeTextFile(lockFile, content, { createNew: true });
    return content;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return undefined;
    throw error;
  }
}

/** The lock at `lockFile`, or undefined when there is none. */
export async function readLock(lockFile: string): Promise<FoundLock | undefined> {
  try {
    const [text, info] = await Promise.all([Deno.readTextFile(lockFile), Deno.stat(lockFile)]);
    const words = text.trim().split(/\s+/);
    const pid = Number(words[0]);
    return {
      text,
      pid: Number.isInteger(pid) && pid > 0 ? pid : undefined,
      startTicks: words.find((w) => /^start=\d+$/.test(w))?.slice("start=".length),
      ageMs: Date.now() - (info.mtime?.getTime() ?? Date.now()),
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Why `found` may be taken over (its holder is gone), or undefined while its holder may still hold it. */
export async function goneReason(found: FoundLock): Promise<string | undefined> {
  if (found.pid === undefined) {
    return found.ageMs > UNWRITTEN_LOCK_GRACE_MS ? `it names no pid and is ${seconds(found.ageMs)} old` : undefined;
  }
  const holder = await processOf(found.pid);
  if (holder === undefined) return `its holder, pid ${found.pid}, is no longer a running deno process`;
  if (found.startTicks !== undefined && holder.startTicks !== undefined) {
    return found.startTicks === holder.startTicks
      ? undefined
      : `its holder, pid ${found.pid}, has exited (the pid now belongs to a process started later)`;
  }
  // A lock without a start time (another OS, or an older writer): a reused pid of another program does not hold it.
  return isDenoComm(holder.comm) ? undefined : `its holder, pid ${found.pid}, is no longer a running deno process`;
}

/** Removes `lockFile` only while it still holds `text` (a small window remains between read and remove). */
export async function releaseLock(lockFile: string, text: string): Promise<void> {
  const now = await Deno.readTextFile(lockFile).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (now !== text) return;
  await Deno.remove(lockFile).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/** True when `pid` is alive and runs deno (a reused pid of another program does not hold our lock). */
export async function isDenoProcess(pid: number): Promise<boolean> {
  const holder = await processOf(pid);
  return holder !== undefined && isDenoComm(holder.comm);
}

function isDenoComm(comm: string): boolean {
  // The kernel keeps the first 15 bytes of the executable's name.
  return comm === "deno" || comm === basename(Deno.execPath()).slice(0, 15);
}

let ownStart: Promise<string | undefined> | undefined;
function ownStartTicks(): Promise<string | undefined> {
  return ownStart ??= processOf(Deno.pid).then((self) => self?.startTicks);
}

/** A live process's name and start time, or undefined when there is no such process (or only its zombie). */
async function processOf(pid: number): Promise<{ comm: string; startTicks?: string } | undefined> {
  if (Deno.build.os !== "linux") return await processOfPs(pid);
  let stat: string;
  try {
    stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch (error) {
    // A process that exits between the open and the read fails with ESRCH, which Deno does not map to NotFound.
    if (error instanceof Deno.errors.NotFound || /\(os error 3\)/.test(String(error))) return undefined;
    throw error;
  }
  // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so fields are counted from the last ")".
  const close = stat.lastIndexOf(")");
  const fields = stat.slice(close + 2).split(" ");
  if (fields[0] === "Z") return undefined; // Exited; only its parent has not reaped it yet.
  return { comm: stat.slice(stat.indexOf("(") + 1, close), startTicks: fields[19] };
}

/** Elsewhere than Linux there is no `/proc`: `ps` tells whether the pid lives and what it runs. */
async function processOfPs(pid: number): Promise<{ comm: string } | undefined> {
  const output = await new Deno.Command("ps", { args: ["-o", "comm=", "-p", String(pid)], stderr: "null" }).output();
  const comm = new TextDecoder().decode(output.stdout).trim();
  return output.success && comm !== "" ? { comm: basename(comm).slice(0, 15) } : undefined;
}

/** The holder's command line, shortened, for messages (undefined where it cannot be read). */
async function commandOf(pid: number): Promise<string | undefined> {
  const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  const command = raw.replaceAll("\0", " ").trim();
  if (command === "") return undefined;
  return command.length > COMMAND_CHARS_MAX ? `${command.slice(0, COMMAND_CHARS_MAX)}…` : command;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
