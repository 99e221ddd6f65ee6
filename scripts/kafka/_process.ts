/**
 * @module
 * Process plumbing for the broker scripts: prerequisite checks, running a tool to completion, starting a
 * detached JVM with its output in a log file, and signalling it. Private to `scripts/kafka/`.
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
  try {
    const { success } = await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output();
    return success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Runs a command to completion; throws with its output when it fails. */
export async function run(command: string, args: string[], options: { cwd?: string } = {}): Promise<string> {
  const output = await new Deno.Command(command, { args, cwd: options.cwd, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(`"${command} ${args.join(" ")}" exited with ${output.code}:\n${text.trim()}`);
  }
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
  const output = await new Deno.Command("ss", {
    args: ["-Hltnp", `sport = :${port}`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const match = /pid=(\d+)/.exec(new TextDecoder().decode(output.stdout));
  return match ? Number(match[1]) : undefined;
}
