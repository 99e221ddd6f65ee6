/**
 * @module
 * Where the project's own PostgreSQL clusters live (one per region: ports, folders), the settings each
 * one runs with, and how its postmaster is recognised. Private to `scripts/postgres/`; import `./mod.ts`.
 */
import { basename, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { type PortHolder, type PortVerdict, portVerdict } from "../kafka/_process.ts";

/** The regions that get a cluster of their own. */
export const PG_REGIONS = ["east", "west"] as const;
export type PgRegion = typeof PG_REGIONS[number];

/**
 * The checkout two folders above `moduleUrl` (a `file:` URL), as a file system path. `fileURLToPath`, not
 * `URL.pathname`: the latter keeps percent-encoding, so a checkout in `my proj` put its clusters in a new
 * folder `my%20proj`.
 */
export function repoRootOf(moduleUrl: string | URL): string {
  return fileURLToPath(new URL("../../", moduleUrl)).replace(/\/$/, "");
}

/** The repository root, found from this file so the scripts work from any working directory. */
export const REPO_ROOT = repoRootOf(import.meta.url);
export const LOGS_DIR = `${REPO_ROOT}/.data/logs`;

/** The installed server binaries (Debian's postgresql-15); `BV_PG_BIN_DIR` points elsewhere. */
export function pgBinDir(): string {
  return Deno.env.get("BV_PG_BIN_DIR") || "/usr/lib/postgresql/15/bin";
}

/**
 * initdb and postgres refuse to run as root, so the clusters run as this OS user (it owns the data
 * folders). `BV_PG_OS_USER` overrides it; when the scripts already run as that user, no `runuser` is used.
 */
export function pgOsUser(): string {
  return Deno.env.get("BV_PG_OS_USER") || "postgres";
}

/** Above the shared server (5432) so both can run side by side. */
const DEFAULT_PORTS: Readonly<Record<PgRegion, number>> = { east: 5433, west: 5434 };

/** Everything that differs between two regional clusters. */
export interface ClusterLayout {
  readonly region: PgRegion;
  readonly port: number;
  /** `.data/pg/<region>` (see `pgRoot`): owned by the cluster's OS user; also the Unix socket folder. */
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** Written by the server itself; its first line is the postmaster's pid. */
  readonly pidFile: string;
  /** Our settings, rewritten on every start and included from `postgresql.conf`. */
  readonly settingsFile: string;
  /** Held while one process runs initdb or starts this cluster (see `withStartLock`). */
  readonly lockFile: string;
}

let pgRootMemo: { readonly dataRoot: string; readonly logsDir: string } | undefined;

/**
 * Where the clusters' folders and logs go: `.data/pg` and `.data/logs` in the checkout when the cluster's
 * OS user can reach them, else (a checkout under a private folder such as `/root`, which the postgres user
 * cannot traverse) a folder of that user's own, `/var/lib/postgresql/bitvelocity-<hash of the checkout>`,
 * so two checkouts never share a cluster. `BV_PG_DATA_ROOT` overrides both.
 */
function pgRoot(): { readonly dataRoot: string; readonly logsDir: string } {
  if (pgRootMemo !== undefined) return pgRootMemo;
  const override = Deno.env.get("BV_PG_DATA_ROOT");
  if (override) return pgRootMemo = { dataRoot: override, logsDir: `${override}/logs` };
  const inCheckout = { dataRoot: `${REPO_ROOT}/.data/pg`, logsDir: LOGS_DIR };
  if (Deno.uid() !== 0) return pgRootMemo = inCheckout;
  const reachable = new Deno.Command("runuser", {
    args: ["-u", pgOsUser(), "--", "test", "-x", REPO_ROOT],
    cwd: "/",
    stdout: "null",
    stderr: "null",
  }).outputSync().success;
  if (reachable) return pgRootMemo = inCheckout;
  let hash = 0;
  for (const char of REPO_ROOT) hash = (Math.imul(hash, 31) + char.charCodeAt(0)) >>> 0;
  const root = `/var/lib/postgresql/bitvelocity-${hash.toString(16)}`;
  return pgRootMemo = { dataRoot: root, logsDir: `${root}/logs` };
}

/** The layout of `region`; the port comes from `PG_<REGION>_PORT` when set. */
export function clusterLayout(region: PgRegion): ClusterLayout {
  const port = portFromEnv(`PG_${region.toUpperCase()}_PORT`, DEFAULT_PORTS[region]);
  const { dataRoot, logsDir } = pgRoot();
  const dir = `${dataRoot}/${region}`;
  return Object.freeze({
    region,
    port,
    dir,
    dataDir: `${dir}/data`,
    logFile: `${logsDir}/postgres-${region}.log`,
    pidFile: `${dir}/data/postmaster.pid`,
    settingsFile: `${dir}/data/bitvelocity.conf`,
    lockFile: `${dir}/start.lock`,
  });
}

/**
 * True when `argv` (a process's command line, `/proc/<pid>/cmdline` split at NUL) is the postmaster of this
 * checkout's `layout` cluster: the `postgres` binary with `-D` naming its data folder, as `pg_ctl start`
 * runs it. (Only the postmaster keeps its command line; its children rewrite theirs to `postgres: …`.)
 */
export function isPostmasterOf(layout: ClusterLayout, argv: readonly string[]): boolean {
  if (argv.length === 0 || !["postgres", "postmaster"].includes(basename(argv[0]))) return false;
  // pg_ctl canonicalizes the folder it passes (no doubled or trailing slash); BV_PG_DATA_ROOT may have either.
  const ours = canonical(layout.dataDir);
  return argv.some((arg, i) =>
    (arg === "-D" && i + 1 < argv.length && canonical(argv[i + 1]) === ours) ||
    (arg.startsWith("-D") && arg.length > 2 && canonical(arg.slice(2)) === ours) ||
    (arg.startsWith("--pgdata=") && canonical(arg.slice("--pgdata=".length)) === ours)
  );
}

function canonical(path: string): string {
  return normalize(path).replace(/(.)\/$/, "$1");
}

/**
 * The data folder of a cluster another checkout of this project started for `layout`'s region (a postmaster
 * whose `-D` is `<checkout>/.data/pg/<region>/data` or `/var/lib/postgresql/bitvelocity-<hash>/<region>/data`),
 * which `./bv test` replaces so its tests own their cluster; undefined for anything else, ours included.
 */
export function siblingClusterDataDir(layout: ClusterLayout, argv: readonly string[]): string | undefined {
  if (argv.length === 0 || !["postgres", "postmaster"].includes(basename(argv[0]))) return undefined;
  if (isPostmasterOf(layout, argv)) return undefined;
  const shape = new RegExp(`(/\\.data/pg|/bitvelocity-[0-9a-f]+)/${layout.region}/data$`);
  for (let i = 0; i < argv.length; i++) {
    const dir = argv[i] === "-D" ? argv[i + 1] : argv[i].startsWith("-D") ? argv[i].slice(2) : undefined;
    if (dir !== undefined && shape.test(canonical(dir))) return canonical(dir);
  }
  return undefined;
}

/**
 * Whether the process on the region's port is this checkout's cluster, the only server the tooling may stop
 * there; otherwise the one line to stop with. Pure.
 */
export function clusterPortVerdict(layout: ClusterLayout, holder: PortHolder | undefined): PortVerdict {
  return portVerdict(layout.port, holder, {
    expected: `this checkout's PostgreSQL ${layout.region} cluster (${layout.dataDir})`,
    portVariable: `PG_${layout.region.toUpperCase()}_PORT`,
    isOurs: (argv) => isPostmasterOf(layout, argv),
  });
}

/** `postgres://postgres@127.0.0.1:<port>/<database>` of the region's cluster. */
export function clusterUrl(region: PgRegion, database = "postgres"): string {
  return `postgres://postgres@127.0.0.1:${clusterLayout(region).port}/${database}`;
}

function portFromEnv(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`${name} must be a TCP port between 1 and 65535, got "${raw}"`);
  }
  return port;
}

/**
 * The settings a regional cluster needs beyond initdb's defaults. Logical replication is the reason these
 * clusters exist (the shared server runs with `wal_level=replica`).
 */
export function clusterSettings(layout: ClusterLayout): string {
  const lines = [
    `# Written by scripts/postgres on every start; edit scripts/postgres/_config.ts instead.`,
    // Trust auth (initdb -A trust) is acceptable only because nothing but loopback can connect.
    `listen_addresses = '127.0.0.1'`,
    `port = ${layout.port}`,
    // Not /var/run/postgresql: that folder belongs to the system's server, and ours must not clash with it.
    `unix_socket_directories = '${layout.dir}'`,
    `max_connections = 300`,
    `shared_buffers = 128MB`,
    `fsync = on`,
    `wal_level = logical`,
    // Commits wait for a synchronous standby only in a database that asks for it (ALTER DATABASE … SET
    // synchronous_commit = on, scripts/postgres/order_replication.ts), never on the whole cluster.
    `synchronous_commit = local`,
    // One slot and one WAL sender per subscription; journeys and the DR drill each add one pair.
    `max_replication_slots = 32`,
    `max_wal_senders = 32`,
    `max_logical_replication_workers = 16`,
    `max_sync_workers_per_subscription = 2`,
    `max_worker_processes = 32`,
    // A forgotten inactive slot would keep WAL forever; past this it is invalidated instead of filling the disk.
    `max_slot_wal_keep_size = 1GB`,
    // Dead subscribers are noticed within this time (the DR drill relies on it to see east gone).
    `wal_sender_timeout = 10s`,
    `wal_receiver_timeout = 10s`,
    // Re-tried quickly after a publisher comes back (the default is 5 s).
    `wal_retrieve_retry_interval = 1s`,
    `log_min_messages = warning`,
    `log_line_prefix = '%m [%p] %q%a '`,
  ];
  return lines.join("\n") + "\n";
}
