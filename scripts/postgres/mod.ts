/**
 * @module
 * The project's own PostgreSQL clusters, one per region, run from the installed server binaries (no
 * Docker): `ensurePostgres("east")` runs initdb on first use (as the `postgres` OS user: initdb refuses
 * root), writes the settings logical replication needs, starts the server with `pg_ctl` and waits until it
 * accepts connections. Used by `scripts/infra_up.ts`, `scripts/infra_down.ts`, `start:infra`, the test
 * runner and the DR drill. The shared server on 5432 is left alone.
 */
import { dirname } from "node:path";
import { createPostgresSql } from "../../shared/adapters/postgres/mod.ts";
import {
  type ClusterLayout,
  clusterLayout,
  clusterPortVerdict,
  clusterSettings,
  clusterUrl,
  PG_REGIONS,
  type PgRegion,
  REPO_ROOT,
  siblingClusterDataDir,
} from "./_config.ts";
import { exists, ignoreNotFound, seconds, tailFile } from "../_process.ts";
// Shared with scripts/kafka (they would belong in scripts/_process.ts): port ownership and the start lock.
import { argvOf, portHolder } from "../kafka/_process.ts";
import { withStartLock } from "../kafka/_start_lock.ts";
import { checkPgPrerequisites, chownToPgUser, livePostmasterPid, PG_TOOL_TIMEOUT_MS, runPgTool } from "./_process.ts";

export { clusterLayout, clusterPortVerdict, clusterUrl, PG_REGIONS };
export type { ClusterLayout, PgRegion };

/** Where progress lines go; the scripts print them, tests may collect them. */
export type ProgressLog = (line: string) => void;

/** How long `ensurePostgres` waits for a started server to accept connections. */
export const PG_START_TIMEOUT_MS_DEFAULT = 60_000;
/** How long `stopPostgres` waits for a fast shutdown before an immediate one. */
export const PG_STOP_TIMEOUT_MS_DEFAULT = 30_000;
const PROBE_TIMEOUT_SEC = 2;
/** Bound on `pg_ctl start` beyond its own `-t`: a pg_ctl that hangs past its wait. */
const PG_START_SLACK_MS = 10_000;
/** Waiting for another process's start lock is bounded by that start's own bounds (initdb, start) plus this. */
const START_LOCK_MARGIN_MS = 10_000;
const INCLUDE_LINE = "include_if_exists = 'bitvelocity.conf'";

/** What `ensurePostgres` did. */
export interface EnsurePostgresResult {
  readonly region: PgRegion;
  /** Admin URL (database `postgres`) of the cluster. */
  readonly url: string;
  /** false when a healthy cluster was already there. */
  readonly started: boolean;
}

/**
 * The data folder of the server answering on 127.0.0.1:`port`, or undefined when nothing accepts a
 * connection there within 2 s.
 */
export async function serverDataDirectory(port: number): Promise<string | undefined> {
  const sql = createPostgresSql({
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    maxConnections: 1,
    connectTimeoutSec: PROBE_TIMEOUT_SEC,
    statementTimeoutMs: PROBE_TIMEOUT_SEC * 1_000,
  });
  try {
    const [row] = await sql.query<
      { data_directory: string }
    >`select current_setting('data_directory') as data_directory`;
    return row.data_directory;
  } catch {
    return undefined;
  } finally {
    await sql.close().catch(() => {});
  }
}

/**
 * Makes sure the region's cluster is up and accepting connections: idempotent, safe from several scripts and
 * processes at once (a per-region start lock: only one of them runs initdb and `pg_ctl start`).
 */
export async function ensurePostgres(
  region: PgRegion,
  options: { readonly log?: ProgressLog; readonly startTimeoutMs?: number } = {},
): Promise<EnsurePostgresResult> {
  const log = options.log ?? console.log;
  const timeoutMs = options.startTimeoutMs ?? PG_START_TIMEOUT_MS_DEFAULT;
  const layout = clusterLayout(region);
  const say: ProgressLog = (line) => log(`[postgres:${region}] ${line}`);
  const result = { region, url: clusterUrl(region) };

  if (await isUp(layout, say)) return { ...result, started: false };
  await checkPgPrerequisites();
  await Deno.mkdir(layout.dir, { recursive: true });
  const lock = {
    lockFile: layout.lockFile,
    what: `starting PostgreSQL ${region}`,
    // initdb and pg_ctl start each have their own bound (see startLocked).
    waitMs: PG_TOOL_TIMEOUT_MS + timeoutMs + PG_START_SLACK_MS + START_LOCK_MARGIN_MS,
    hint: `see ${relative(layout.logFile)}`,
    say,
  };
  const started = await withStartLock(lock, () => startLocked(layout, timeoutMs, say));
  return { ...result, started };
}

/**
 * True when the region's cluster already answers on its port; throws when a server with another data folder
 * (`data_directory`, asked over SQL) answers there, since callers would otherwise use it by mistake.
 */
async function isUp(layout: ClusterLayout, say: ProgressLog): Promise<boolean> {
  const running = await serverDataDirectory(layout.port);
  if (running === undefined) return false;
  if (running !== layout.dataDir) {
    throw new Error(
      `Port ${layout.port} is held by a PostgreSQL server with data in ${running}, not ${relative(layout.dataDir)}; ` +
        `stop it or set PG_${layout.region.toUpperCase()}_PORT to another port`,
    );
  }
  say(`already up on 127.0.0.1:${layout.port}; nothing to do`);
  return true;
}

/** The rest of `ensurePostgres`, run holding the region's start lock; resolves true when it started the server. */
async function startLocked(layout: ClusterLayout, timeoutMs: number, say: ProgressLog): Promise<boolean> {
  const { region } = layout;
  // Another process may have started the cluster while this one waited for the lock.
  if (await isUp(layout, say)) return false;
  await Deno.mkdir(dirname(layout.logFile), { recursive: true });
  await initdbOnce(layout, say);
  await Deno.writeTextFile(layout.settingsFile, clusterSettings(layout));
  // The server writes its own log (pg_ctl -l) as the OS user, so that user must own the file.
  await Deno.writeTextFile(layout.logFile, `\n=== start ${new Date().toISOString()} ===\n`, { append: true });
  await chownToPgUser(layout.settingsFile);
  await chownToPgUser(layout.logFile);

  say(`starting on 127.0.0.1:${layout.port} (log: ${relative(layout.logFile)})`);
  const startedMs = Date.now();
  try {
    // -w waits until the server accepts connections (or -t passes); a stale postmaster.pid of a crashed
    // server is detected and ignored by the server itself.
    await runPgTool("pg_ctl", [
      "-D",
      layout.dataDir,
      "-l",
      layout.logFile,
      "-w",
      "-t",
      String(Math.ceil(timeoutMs / 1000)),
      "start",
    ], timeoutMs + PG_START_SLACK_MS);
  } catch (error) {
    throw new Error(
      `PostgreSQL ${region} did not start on port ${layout.port}: ${(error as Error).message}\n` +
        `last lines of ${relative(layout.logFile)}:\n${await tailFile(layout.logFile, 20)}`,
    );
  }
  if ((await serverDataDirectory(layout.port)) !== layout.dataDir) {
    throw new Error(
      `PostgreSQL ${region} started but does not answer on 127.0.0.1:${layout.port}; see ${relative(layout.logFile)}`,
    );
  }
  say(`up on 127.0.0.1:${layout.port} after ${seconds(Date.now() - startedMs)}`);
  return true;
}

/** Creates the cluster unless `PG_VERSION` shows it exists (data is kept across runs). */
async function initdbOnce(layout: ClusterLayout, say: ProgressLog): Promise<void> {
  if (await exists(`${layout.dataDir}/PG_VERSION`)) return;
  say(`initdb in ${relative(layout.dataDir)}`);
  await Deno.remove(layout.dataDir, { recursive: true }).catch(ignoreNotFound);
  await Deno.mkdir(layout.dataDir, { recursive: true, mode: 0o700 });
  await chownToPgUser(layout.dir);
  await runPgTool("initdb", [
    "-D",
    layout.dataDir,
    "-U",
    "postgres",
    // Loopback only (listen_addresses), see _config.ts.
    "-A",
    "trust",
    "-E",
    "UTF8",
    "--no-locale",
  ]);
  await Deno.writeTextFile(`${layout.dataDir}/postgresql.conf`, `\n${INCLUDE_LINE}\n`, { append: true });
}

/**
 * One line when the region's port is held by anything but this checkout's cluster (by the listener's command
 * line: `postgres -D <our data folder>`): another checkout's cluster, the system's, an unrelated program.
 * Nothing is signalled; `infra:up` / `infra:down` print the line and exit non-zero.
 */
export async function postgresPortProblems(region: PgRegion): Promise<string[]> {
  const layout = clusterLayout(region);
  const verdict = clusterPortVerdict(layout, await portHolder(layout.port));
  return verdict.kind === "foreign" ? [verdict.message] : [];
}

/**
 * For `./bv test`, whose tests stop and restart clusters and must own the data: stops a cluster another checkout
 * of this project left on the region's port (`siblingClusterDataDir`; `pg_ctl stop -m fast`) and resolves true;
 * resolves false when the port is free or holds this checkout's cluster; throws, with one line, when anything
 * else holds it (never signalled: the shared server on 5432 is never on a region's port anyway).
 */
export async function stopForeignPostgres(region: PgRegion, log: ProgressLog = console.log): Promise<boolean> {
  const layout = clusterLayout(region);
  const holder = await portHolder(layout.port);
  const sibling = holder?.pid === undefined ? undefined : siblingClusterDataDir(layout, argvOf(holder.cmdline));
  if (sibling !== undefined) {
    log(`[postgres:${region}] port ${layout.port} is held by another checkout's cluster in ${sibling}: stopping it`);
    await runPgTool("pg_ctl", ["stop", "-D", sibling, "-m", "fast", "-w", "-t", "30"]);
    return true;
  }
  const problems = await postgresPortProblems(region);
  if (problems.length > 0) throw new Error(problems.join("\n"));
  return false;
}

/**
 * Stops the region's cluster if it runs: `fast` (disconnect clients, checkpoint) by default, `immediate`
 * (no checkpoint: a crash from the data's point of view, WAL replay at the next start) when asked.
 * Resolves false when nothing was running.
 */
export async function stopPostgres(
  region: PgRegion,
  options: { readonly log?: ProgressLog; readonly mode?: "fast" | "immediate"; readonly timeoutMs?: number } = {},
): Promise<boolean> {
  const log = options.log ?? console.log;
  const mode = options.mode ?? "fast";
  const timeoutMs = options.timeoutMs ?? PG_STOP_TIMEOUT_MS_DEFAULT;
  const layout = clusterLayout(region);
  const say: ProgressLog = (line) => log(`[postgres:${region}] ${line}`);
  // Only this cluster's own postmaster: pg_ctl signals whatever pid postmaster.pid names.
  const pid = await livePostmasterPid(layout);
  if (pid === undefined) {
    say("not running; nothing to stop");
    return false;
  }
  say(`stopping pid ${pid} (${mode})`);
  const startedMs = Date.now();
  const stop = (m: string) =>
    runPgTool("pg_ctl", ["-D", layout.dataDir, "-m", m, "-w", "-t", String(Math.ceil(timeoutMs / 1000)), "stop"]);
  try {
    await stop(mode);
  } catch (error) {
    if (mode === "immediate") throw error;
    say(`fast stop failed (${(error as Error).message.split("\n")[0]}); stopping immediately`);
    await stop("immediate");
  }
  say(`stopped after ${seconds(Date.now() - startedMs)}`);
  return true;
}

/** Deletes the region's cluster (`.data/pg/<region>`); it must be stopped. */
export async function purgePostgresData(region: PgRegion, log: ProgressLog = console.log): Promise<void> {
  const layout = clusterLayout(region);
  if ((await livePostmasterPid(layout)) !== undefined) {
    throw new Error(`PostgreSQL ${region} is still running; stop it before purging ${relative(layout.dir)}`);
  }
  await Deno.remove(layout.dir, { recursive: true }).catch(ignoreNotFound);
  log(`[postgres:${region}] deleted ${relative(layout.dir)}`);
}

function relative(path: string): string {
  return path.startsWith(`${REPO_ROOT}/`) ? path.slice(REPO_ROOT.length + 1) : path;
}

/**
 * The `BV_<REGION>_PG_URL` variables that put each region on its project cluster: for every region whose
 * environment names neither its own server nor a shared one (`BV_PG_URL`). An explicit choice is kept.
 */
export function projectClusterEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const added: Record<string, string> = {};
  if (env.BV_PG_URL) return added;
  for (const region of PG_REGIONS) {
    const name = `BV_${region.toUpperCase()}_PG_URL`;
    if (!env[name]) added[name] = clusterUrl(region);
  }
  return added;
}

/** True when `url` points at the region's project cluster (so `ensurePostgres(region)` should run first). */
export function isProjectCluster(region: PgRegion, url: string): boolean {
  const parsed = new URL(url);
  return ["127.0.0.1", "localhost"].includes(parsed.hostname) && Number(parsed.port) === clusterLayout(region).port;
}
