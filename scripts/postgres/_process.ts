/**
 * @module
 * Process plumbing for the cluster scripts: running a server binary as the cluster's OS user, file
 * ownership and the postmaster's liveness. Private to `scripts/postgres/`; the helpers it shares with
 * `scripts/kafka` (pid files, `/proc` liveness, log tails) are in `scripts/_process.ts`.
 */
import { exists, isProcessAlive, readPid, seconds } from "../_process.ts";
import { argvOf, processCmdline } from "../kafka/_process.ts";
import { type ClusterLayout, isPostmasterOf, pgBinDir, pgOsUser } from "./_config.ts";

/** Bound on any one tool run (initdb, pg_ctl): a hung tool fails the script instead of hanging it. */
export const PG_TOOL_TIMEOUT_MS = 120_000;

/** Runs `pgBinDir()/<tool> args` as the cluster's OS user; resolves with its output, throws with it on failure. */
export async function runPgTool(tool: string, args: string[], timeoutMs = PG_TOOL_TIMEOUT_MS): Promise<string> {
  const binary = `${pgBinDir()}/${tool}`;
  const asRoot = Deno.uid() === 0;
  const command = asRoot ? "runuser" : binary;
  const fullArgs = asRoot ? ["-u", pgOsUser(), "--", binary, ...args] : args;
  const signal = AbortSignal.timeout(timeoutMs);
  const output = await new Deno.Command(command, {
    args: fullArgs,
    // The OS user may not be able to read the caller's working directory.
    cwd: "/",
    stdout: "piped",
    stderr: "piped",
    signal,
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (!output.success && signal.aborted) {
    throw new Error(
      `"${tool} ${args.join(" ")}" did not finish within ${seconds(timeoutMs)} and was stopped:\n${text.trim()}`,
    );
  }
  if (!output.success) {
    throw new Error(`"${tool} ${args.join(" ")}" exited with ${output.code}:\n${text.trim()}`);
  }
  return text;
}

/** Makes `path` owned by the cluster's OS user (only possible, and only needed, when running as root). */
export async function chownToPgUser(path: string): Promise<void> {
  if (Deno.uid() !== 0) return;
  const output = await new Deno.Command("chown", { args: ["-R", `${pgOsUser()}:`, path], stderr: "piped" }).output();
  if (!output.success) {
    throw new Error(`chown of ${path} to "${pgOsUser()}" failed: ${new TextDecoder().decode(output.stderr).trim()}`);
  }
}

/** Throws one line naming what is missing when the server binaries or the OS user are not there. */
export async function checkPgPrerequisites(): Promise<void> {
  for (const tool of ["initdb", "pg_ctl", "postgres"]) {
    if (!(await exists(`${pgBinDir()}/${tool}`))) {
      throw new Error(
        `PostgreSQL server binaries not found in ${pgBinDir()} (missing ${tool}); install them with ` +
          `"apt-get install -y postgresql-15" or set BV_PG_BIN_DIR`,
      );
    }
  }
  if (Deno.uid() === 0) {
    const output = await new Deno.Command("id", { args: ["-u", pgOsUser()], stdout: "null", stderr: "null" })
      .output();
    if (!output.success) {
      throw new Error(`OS user "${pgOsUser()}" does not exist; create it or set BV_PG_OS_USER (initdb refuses root)`);
    }
  }
}

/**
 * The postmaster's pid from `postmaster.pid` when that process is alive and is this cluster's postmaster
 * (`isPostmasterOf`), else undefined. A file left by a crash can name a pid since reused by anything, and
 * `pg_ctl stop` would signal whatever that is.
 */
export async function livePostmasterPid(layout: ClusterLayout): Promise<number | undefined> {
  const pid = await readPid(layout.pidFile);
  if (pid === undefined || !(await isProcessAlive(pid))) return undefined;
  const cmdline = await processCmdline(pid);
  return cmdline !== undefined && isPostmasterOf(layout, argvOf(cmdline)) ? pid : undefined;
}
