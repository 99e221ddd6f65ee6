/**
 * @module
 * Process plumbing for the broker scripts: prerequisite checks, running a tool to completion within a bound,
 * starting a detached JVM with its output in a log file, signalling it, and telling whose process holds a
 * port. Private to `scripts/kafka/`; `scripts/postgres` uses the port checks too (they would belong in
 * `scripts/_process.ts`, which this folder's changes leave alone).
 */

import {
  exists,
  ignoreNotFound,
  isProcessAlive,
  readPid,
  seconds,
  signalProcess,
  sleep,
  tailFile,
} from "../_process.ts";

// Re-exported so that this folder keeps one door for its process plumbing.
export { exists, ignoreNotFound, isProcessAlive, readPid, seconds, signalProcess, sleep, tailFile };

const INSTALL_COMMAND = "apt-get update && apt-get install -y openjdk-17-jre-headless maven";
/** Bound on `java -version` / `mvn -v`: each answers in about a second. */
const PREREQUISITE_CHECK_TIMEOUT_MS = 30_000;
/** Bound on `ss`, which answers in milliseconds. */
const SS_TIMEOUT_MS = 5_000;

/** Throws one line naming each missing tool (`java`, `mvn`) and how to install it. */
export async function checkPrerequisites(tools: readonly ("java" | "mvn")[]): Promise<void> {
  const missing: string[] = [];
  for (const tool of tools) {
    const args = tool === "java" ? ["-version"] : ["-v"];
    if (!(await commandWorks(tool, args))) missing.push(tool);
  }
  if (missing.length > 0) {
    const them = missing.length > 1 ? "them" : "it";
    throw new Error(
      `Kafka needs ${missing.map((t) => `"${t}"`).join(" and ")} on PATH; install ${them} with: ${INSTALL_COMMAND}`,
    );
  }
}

async function commandWorks(command: string, args: string[]): Promise<boolean> {
  const signal = AbortSignal.timeout(PREREQUISITE_CHECK_TIMEOUT_MS);
  try {
    const { success } = await new Deno.Command(command, { args, stdout: "null", stderr: "null", signal }).output();
    if (!success && signal.aborted) {
      throw new Error(`"${command} ${args.join(" ")}" did not answer within ${seconds(PREREQUISITE_CHECK_TIMEOUT_MS)}`);
    }
    return success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** How `run` bounds a command. */
export interface RunOptions {
  readonly cwd?: string;
  /** Past this the command gets SIGTERM and `run` throws; no default, so every caller states its bound. */
  readonly timeoutMs: number;
  /** The constant (or option) the bound comes from, named in the error so it can be found and changed. */
  readonly timeoutName?: string;
}

/** Runs a command to completion within `timeoutMs`; throws with its output when it fails or runs too long. */
export async function run(command: string, args: string[], options: RunOptions): Promise<string> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  const output = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
    signal,
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  const named = `"${[command, ...args].join(" ")}"`;
  if (!output.success && signal.aborted) {
    const bound = options.timeoutName ? ` (${options.timeoutName})` : "";
    throw new Error(
      `${named} did not finish within ${seconds(options.timeoutMs)}${bound} and was stopped; its output:\n` +
        text.trim(),
    );
  }
  if (!output.success) throw new Error(`${named} exited with ${output.code}:\n${text.trim()}`);
  return text;
}

/**
 * Starts `command` in its own process group, detached from this one, with stdout and stderr appended to
 * `logFile`; resolves with its pid. `exec` in the shell keeps the pid the JVM's own, so the pid file
 * points at the broker and not at a wrapper.
 */
export function spawnDetached(command: string[], logFile: string, cwd: string): number {
  const quoted = command.map(shellQuote).join(" ");
  const child = new Deno.Command("sh", {
    args: ["-c", `exec ${quoted} >>${shellQuote(logFile)} 2>&1 </dev/null`],
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  child.unref();
  return child.pid;
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** True when something accepts TCP connections on 127.0.0.1:`port` within `timeoutMs`. */
export async function isPortOpen(port: number, timeoutMs: number): Promise<boolean> {
  const attempt = Deno.connect({ hostname: "127.0.0.1", port }).then((conn) => {
    conn.close();
    return true;
  }, () => false);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
  try {
    return await Promise.race([attempt, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The pid from `pidFile` when that process is alive and its command line contains `mustContain`. */
export async function livePid(pidFile: string, mustContain: string): Promise<number | undefined> {
  const pid = await readPid(pidFile);
  if (pid === undefined) return undefined;
  return (await isProcessAlive(pid, mustContain)) ? pid : undefined;
}

/** How `terminate` waits and what it says. */
export interface TerminateOptions {
  /** Removed once the process is gone. */
  readonly pidFile: string;
  /** Text of the process's command line that proves the pid is still ours (see `isProcessAlive`). */
  readonly mustContain: string;
  /** How long a clean shutdown may take before SIGKILL. */
  readonly graceMs: number;
  readonly pollIntervalMs: number;
  /** How often to say it is still waiting; never when left out. */
  readonly progressEveryMs?: number;
  readonly say: (line: string) => void;
}

/** SIGTERM to `pid` (a clean stop), SIGKILL once `graceMs` has passed; then removes the pid file. */
export async function terminate(pid: number, options: TerminateOptions): Promise<void> {
  const { graceMs, pollIntervalMs, progressEveryMs, say } = options;
  signalProcess(pid, "SIGTERM");
  const startedMs = Date.now();
  let nextProgressMs = startedMs + (progressEveryMs ?? Infinity);
  while (await isProcessAlive(pid, options.mustContain)) {
    if (Date.now() - startedMs >= graceMs) {
      say(`still running after ${seconds(graceMs)}; sending SIGKILL`);
      signalProcess(pid, "SIGKILL");
      await sleep(pollIntervalMs);
      break;
    }
    if (Date.now() >= nextProgressMs) {
      say(`waiting for a clean shutdown (${seconds(Date.now() - startedMs)})`);
      nextProgressMs += progressEveryMs ?? Infinity;
    }
    await sleep(pollIntervalMs / 2);
  }
  await Deno.remove(options.pidFile).catch(ignoreNotFound);
  say(`stopped after ${seconds(Date.now() - startedMs)}`);
}

/** The pid of the process listening on TCP `port` (from `ss`), or undefined when none does. */
export async function listenerPid(port: number): Promise<number | undefined> {
  return (await portHolder(port))?.pid;
}

/** A process listening on a TCP port, as `ss` and `/proc` show it. */
export interface PortHolder {
  /** Undefined when `ss` does not show it: another user's process, seen without root. */
  readonly pid?: number;
  /** Its `/proc/<pid>/cmdline`: the arguments, each ended by NUL; "" when unknown. */
  readonly cmdline: string;
}

/** Who listens on TCP `port`, or undefined when nothing does (or the listener has just exited). */
export async function portHolder(port: number): Promise<PortHolder | undefined> {
  const output = await new Deno.Command("ss", {
    args: ["-Hltnp", `sport = :${port}`],
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(SS_TIMEOUT_MS),
  }).output();
  const listing = new TextDecoder().decode(output.stdout);
  if (listing.trim() === "") return undefined;
  const match = /pid=(\d+)/.exec(listing);
  if (match === null) return { cmdline: "" };
  const pid = Number(match[1]);
  const cmdline = await processCmdline(pid);
  return cmdline === undefined ? undefined : { pid, cmdline };
}

/** `/proc/<pid>/cmdline` of a live process, or undefined once it has gone. */
export async function processCmdline(pid: number): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(`/proc/${pid}/cmdline`);
  } catch (error) {
    // Gone between the listing and the read: ESRCH is not mapped to NotFound (see scripts/_process.ts).
    if (error instanceof Deno.errors.NotFound || /\(os error 3\)/.test(String(error))) return undefined;
    throw error;
  }
}

/** The arguments of a `/proc/<pid>/cmdline` (NUL-separated, NUL-terminated). */
export function argvOf(cmdline: string): string[] {
  const argv = cmdline.split("\0");
  if (argv.at(-1) === "") argv.pop();
  return argv;
}

/** A command line on one short line for an error message: long ones keep their start and their end. */
export function commandSummary(argv: readonly string[], maxChars = 200): string {
  const line = argv.join(" ").replace(/\s+/g, " ").trim() || "command line unknown";
  if (line.length <= maxChars) return line;
  const head = Math.floor(maxChars * 0.4);
  return `${line.slice(0, head)} … ${line.slice(line.length - (maxChars - head - 3))}`;
}

/** What is on a port the tooling wants for its own server. */
export type PortVerdict =
  | { readonly kind: "free" }
  /** This checkout's server: the only kind of process the tooling may signal. */
  | { readonly kind: "ours"; readonly pid: number }
  /** Anything else; `message` is the one line to stop with. */
  | { readonly kind: "foreign"; readonly message: string };

/** Who may hold a port, for `portVerdict`. */
export interface PortOwner {
  /** For the message, e.g. `this checkout's Kafka east broker`. */
  readonly expected: string;
  /** The variable that moves our server to another port, e.g. `KAFKA_EAST_PORT`. */
  readonly portVariable: string;
  /** True when the command line is our server's. */
  readonly isOurs: (argv: readonly string[]) => boolean;
}

/**
 * Decides, from the holder's command line alone, whether the process on `port` is ours to signal. Pure, so
 * the decision is tested on made-up command lines; a holder whose pid is unknown is never ours.
 */
export function portVerdict(port: number, holder: PortHolder | undefined, owner: PortOwner): PortVerdict {
  if (holder === undefined) return { kind: "free" };
  const argv = argvOf(holder.cmdline);
  if (holder.pid !== undefined && owner.isOurs(argv)) return { kind: "ours", pid: holder.pid };
  const who = holder.pid === undefined
    ? "a process whose pid this user cannot see"
    : `pid ${holder.pid} (${commandSummary(argv)})`;
  return {
    kind: "foreign",
    message: `Port ${port} is held by ${who}, not ${owner.expected}; it was left running: stop it or set ` +
      `${owner.portVariable} to another port`,
  };
}
