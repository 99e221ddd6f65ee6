/**
 * @module
 * What the DR drill (`scripts/dr`) and the journeys' `startPlatform` (`tests/support/platform.ts`) both need to
 * run the platform beside a developer's own: the port and isolation variables of a run, each deployable's
 * `/readyz` URL, polling them, and a child process whose output goes to a log file. Kept here, not in test
 * support, because the drill is a script and must not lean on test files.
 */
import { type Config, type Region, REGIONS, SERVICES } from "../shared/config/config.ts";
import { clusterUrl } from "./postgres/mod.ts";

/**
 * Port variables of a run at `offset`: everything in 20000 + offset × 1000, distinct from the defaults. Offsets
 * up to 11 stay below the ephemeral range (32768+), where an outgoing connection could already hold a port.
 */
export function platformPortEnv(offset: number): Record<string, string> {
  // Ports stay below 32768, where Linux's ephemeral range starts: an outgoing connection may hold any port above it.
  if (!Number.isInteger(offset) || offset < 0 || offset > 11) {
    throw new RangeError(`Port offset must be a whole number from 0 to 11 (ports 20xxx–31xxx), got ${offset}`);
  }
  const base = 20_000 + offset * 1_000;
  return {
    BV_EDGE_PORT: String(base + 80),
    BV_EAST_INGRESS_PORT: String(base + 81),
    BV_WEST_INGRESS_PORT: String(base + 82),
    BV_EAST_SERVICE_PORT_BASE: String(base + 110),
    BV_WEST_SERVICE_PORT_BASE: String(base + 210),
    BV_EAST_EMBEDDED_MQTT_PORT: String(base + 883),
    BV_WEST_EMBEDDED_MQTT_PORT: String(base + 884),
    BV_PAYMENT_GATEWAY_PORT: String(base + 89),
    BV_EAST_GRPC_INVENTORY_PORT: String(base + 51),
    BV_WEST_GRPC_INVENTORY_PORT: String(base + 52),
  };
}

/**
 * Variables that give a run named `id` data of its own: per region a database on the region's project cluster
 * (`scripts/postgres`), a vhost, and one Redis and one Kafka prefix. `start:infra` creates them.
 */
export function isolationEnv(id: string): Record<string, string> {
  return {
    BV_EAST_PG_DATABASE: `${id}_east`,
    BV_WEST_PG_DATABASE: `${id}_west`,
    BV_EAST_PG_URL: clusterUrl("east"),
    BV_WEST_PG_URL: clusterUrl("west"),
    BV_EAST_AMQP_VHOST: `${id}_east`,
    BV_WEST_AMQP_VHOST: `${id}_west`,
    BV_REDIS_PREFIX: `${id}:`,
    BV_KAFKA_PREFIX: `${id}.`,
  };
}

/** A fresh `BV_INTERNAL_SIGNING_KEY`: Standard Webhooks form, `whsec_` + base64 of 32 random bytes. */
export function generateInternalSigningKey(): string {
  return `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
}

/**
 * Sets `BV_INTERNAL_SIGNING_KEY` in this process's environment when it is unset, before the config is read: every
 * process a platform start runs (children inherit the environment) then shares one key nobody had to choose. A
 * deployment sets its own, the same in every region; a developer's key is kept.
 */
export function ensureInternalSigningKey(): void {
  if (!Deno.env.get("BV_INTERNAL_SIGNING_KEY")) Deno.env.set("BV_INTERNAL_SIGNING_KEY", generateInternalSigningKey());
}

/**
 * Sets `BV_WEBHOOK_EGRESS=any` in this process's environment when it is unset, before the config is read: the
 * development starts (`./bv start`, `start:infra`) and their children then deliver partner webhooks to receivers on
 * localhost, as the partner kit's example does. A deployable started on its own keeps the default, `public`; a value
 * the developer set is kept. Each webhooks instance logs a warning at start while egress is `any`.
 */
export function ensureDevelopmentWebhookEgress(): void {
  if (!Deno.env.get("BV_WEBHOOK_EGRESS")) Deno.env.set("BV_WEBHOOK_EGRESS", "any");
}

/** One process of the platform as `start:infra` runs it. */
export interface Deployable {
  /** `<service>-<region>`, `ingress-<region>`, `edge`. */
  readonly name: string;
  /** undefined for the processes shared by both regions (edge). */
  readonly region: Region | undefined;
  readonly script: string;
  readonly readyUrl: string;
}

/** Every region's services then its ingress, region by region, then the edge: the order they start in. */
export function platformDeployables(config: Config): Deployable[] {
  const host = config.connectHost;
  const all: Deployable[] = [];
  for (const region of REGIONS) {
    const r = config.regions[region];
    for (const service of SERVICES) {
      const readyUrl = `http://${host}:${r.servicePorts[service]}/readyz`;
      all.push({ name: `${service}-${region}`, region, script: `regional/${service}/main.ts`, readyUrl });
    }
    const readyUrl = `http://${host}:${r.ingressPort}/readyz`;
    all.push({ name: `ingress-${region}`, region, script: "regional/ingress/main.ts", readyUrl });
  }
  all.push({
    name: "edge",
    region: undefined,
    script: "edge/main.ts",
    readyUrl: `http://${host}:${config.BV_EDGE_PORT}/readyz`,
  });
  return all;
}

/** Pause between polling rounds, and the bound on one `/readyz` request. */
const READY_POLL_MS = 200;
const READY_REQUEST_TIMEOUT_MS = 1_500;

/**
 * Polls each `/readyz` in `readyUrls` (by name) until all answer 200. Throws, naming the ones still pending,
 * once `timeoutMs` has passed since `since` (a `performance.now()` reading). `beforeRound` runs first in every
 * round and may throw to stop waiting (a process that has exited will never become ready).
 */
export async function waitUntilReady(
  readyUrls: Readonly<Record<string, string>>,
  timeoutMs: number,
  options: { readonly since?: number; readonly beforeRound?: () => Promise<void> } = {},
): Promise<number> {
  const since = options.since ?? performance.now();
  const pending = new Set(Object.keys(readyUrls));
  while (pending.size > 0) {
    await options.beforeRound?.();
    if (performance.now() - since > timeoutMs) {
      throw new Error(`Not ready within ${timeoutMs} ms: ${[...pending].join(", ")}`);
    }
    await Promise.all([...pending].map(async (name) => {
      try {
        const response = await fetch(readyUrls[name], { signal: AbortSignal.timeout(READY_REQUEST_TIMEOUT_MS) });
        await response.body?.cancel();
        if (response.ok) pending.delete(name);
      } catch {
        // Not listening yet.
      }
    }));
    if (pending.size > 0) await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
  return performance.now() - since;
}

/** A `deno run -A <script>` child whose stdout and stderr are appended to a log file. */
export interface LoggedChild {
  readonly child: Deno.ChildProcess;
  /** Settles once both streams have been copied to the log (after the child exits). */
  readonly pumped: Promise<void>;
}

/** Starts `deno run -A script` with `env`, its output going to `log`. */
export function spawnLogged(script: string, env: Record<string, string>, log: Deno.FsFile): LoggedChild {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Both streams into the log; the pipes must be drained or the child would block on a full pipe.
  const pumped = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const chunk of stream) await log.write(chunk);
  })).then(() => {});
  return { child, pumped };
}

/** Sends `signal` to `child`, ignoring a child that has already exited. */
export function signalChild(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // Already gone.
  }
}

/**
 * Stops `processes` the way a supervisor should: SIGTERM to each, last started first (the ingress before the
 * services it proxies), SIGKILL to any still running after `timeoutMs`; resolves when all have exited.
 */
export async function stopProcesses(processes: readonly Deno.ChildProcess[], timeoutMs: number): Promise<void> {
  for (const process of [...processes].reverse()) signalChild(process, "SIGTERM");
  const timer = setTimeout(() => {
    for (const process of processes) signalChild(process, "SIGKILL");
  }, timeoutMs);
  await Promise.allSettled(processes.map((process) => process.status));
  clearTimeout(timer);
}

/** One supervised deployable: `process` is replaced each time the supervisor restarts it. */
export interface Supervised {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  readonly restarts: number;
}

export interface SupervisorOptions {
  /** Prefix of the supervisor's log lines (`start:infra`, `lean platform`). */
  readonly label: string;
  /** A deployable that keeps exiting is given up on after this many restarts. */
  readonly restartsMax: number;
  /** The wait before restart `n` (1-based). */
  readonly backoffMs: (restart: number) => number;
}

/**
 * Starts deployables (`deno run -A [...flags] script`, output inherited) and restarts any that exits without
 * being asked to, after `backoffMs`, at most `restartsMax` times. `stop()` stops them all (see
 * {@link stopProcesses}) and restarts nothing from then on. Used by `start:infra` and the bench's lean platform.
 */
export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #children: { name: string; process: Deno.ChildProcess; restarts: number }[] = [];
  #stopping = false;

  constructor(options: SupervisorOptions) {
    this.#options = options;
  }

  /** The deployables started so far, in start order. */
  get children(): readonly Supervised[] {
    return this.#children;
  }

  start(name: string, script: string, env: Record<string, string>, flags: readonly string[] = []): Supervised {
    const { label, restartsMax, backoffMs } = this.#options;
    const launch = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", ...flags, script],
        env,
        stdin: "null",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    const child = { name, process: launch(), restarts: 0 };
    const watch = (process: Deno.ChildProcess) => {
      process.status.then(async (status) => {
        if (this.#stopping) return;
        if (child.restarts >= restartsMax) {
          console.error(`${label}: ${name} exited with code ${status.code}; gave up after ${restartsMax} restarts`);
          return;
        }
        child.restarts++;
        const delayMs = backoffMs(child.restarts);
        console.error(`${label}: ${name} exited with code ${status.code}; restart ${child.restarts} in ${delayMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (this.#stopping) return;
        child.process = launch();
        watch(child.process);
      });
    };
    watch(child.process);
    this.#children.push(child);
    return child;
  }

  /** Stops every deployable (SIGTERM, last started first; SIGKILL after `timeoutMs`); no restart after this. */
  async stop(timeoutMs: number): Promise<void> {
    this.#stopping = true;
    await stopProcesses(this.#children.map((child) => child.process), timeoutMs);
  }
}
