/**
 * @module
 * Process and file plumbing shared by the server scripts (`scripts/kafka`, `scripts/postgres`): pid files,
 * liveness from `/proc`, signals, log tails. Private to `scripts/`; each folder's own `_process.ts` adds
 * what only its server needs (a JVM launcher, running a tool as the cluster's OS user).
 */

/**
 * True when `pid` is a live process, and, with `mustContain`, its command line contains that text (guards
 * against a reused pid in a stale pid file). Leave `mustContain` out for a process just spawned: until the
 * shell has exec'd, its command line is still its parent's.
 */
export async function isProcessAlive(pid: number, mustContain?: string): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // A zombie (state Z) has exited; only its parent has not reaped it yet.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z") return false;
    if (mustContain === undefined) return true;
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmdline.replaceAll("\0", " ").includes(mustContain);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || isNoSuchProcess(error)) return false;
    throw error;
  }
}

/**
 * A process that exits between the open and the read of its `/proc` file fails the read with ESRCH ("No such
 * process", os error 3), which Deno does not map to `NotFound` (seen in a CI run of `process_test.ts`).
 */
function isNoSuchProcess(error: unknown): boolean {
  return (error as { code?: unknown })?.code === "ESRCH" || /\(os error 3\)/.test(String(error));
}

/**
 * The pid on the first line of `pidFile` (ours hold only that line; PostgreSQL's `postmaster.pid` has more
 * lines after it), or undefined when the file is missing or does not start with a pid.
 */
export async function readPid(pidFile: string): Promise<number | undefined> {
  try {
    const pid = Number((await Deno.readTextFile(pidFile)).trim().split("\n")[0].trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Sends `signal` to `pid`, ignoring a process that has already gone. */
export function signalProcess(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** The last `count` lines of a text file, or "" when it does not exist. */
export async function tailFile(path: string, count: number): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-count).join("\n");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** `ms` as seconds with one decimal, for progress lines. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** For `.catch()` on a removal: a file already gone is fine, anything else is rethrown. */
export function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
