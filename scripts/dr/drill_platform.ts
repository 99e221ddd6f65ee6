/**
 * @module
 * The platform the DR drill runs on: every deployable as its own process (as `start:infra` runs them), but
 * without a supervisor that would restart what the drill kills, on ports and databases of its own (the
 * project clusters, a Kafka topic prefix, vhosts and a Redis prefix unique to the run), so a developer's
 * running platform is untouched. Output of every process goes to one log file.
 */
import { type Config, loadConfig, type Region } from "../../shared/config/config.ts";
import {
  type Deployable,
  ensureInternalSigningKey,
  isolationEnv,
  platformDeployables,
  platformPortEnv,
  signalChild,
  spawnLogged,
  stopProcesses,
  waitUntilReady,
} from "../platform_processes.ts";

/** Port offset of the drill's processes (29000–29999): journeys use other offsets of the same layout. */
const PORT_OFFSET = 9;

/** The environment of a drill run named `id` (lower-case letters, digits, "_"). */
export function drillEnv(id: string, synchronous: boolean): Record<string, string> {
  // One key for the whole drill, restarts included: east and west must agree on it.
  ensureInternalSigningKey();
  return {
    ...Deno.env.toObject(),
    BV_MODE: "infra",
    BV_LOG_LEVEL: "warn",
    ...platformPortEnv(PORT_OFFSET),
    ...isolationEnv(id),
    BV_ADMIN_EMAIL: "drill-admin@bitvelocity.local",
    BV_ADMIN_PASSWORD: "drill-admin-password",
    // Outlives the whole drill, so the load generator never refreshes mid-failover.
    BV_ACCESS_TOKEN_TTL_SEC: "3600",
    BV_SHUTDOWN_GRACE_MS: "3000",
    BV_ORDER_REPLICATION: synchronous ? "sync" : "async",
  };
}

interface Proc extends Deployable {
  readonly child: Deno.ChildProcess;
  readonly env: Record<string, string>;
}

export interface DrillPlatform {
  readonly config: Config;
  readonly edgeUrl: string;
  readonly ingressUrl: Readonly<Record<Region, string>>;
  readonly logPath: string;
  /** Starts the processes of `region` (all regions and the shared ones when undefined); throws once stopping. */
  start(region?: Region): void;
  /** Resolves once every started process answers `/readyz` 200; throws after `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<void>;
  /** SIGKILLs every process of `region` (a crash: nothing drains) and waits until they are gone. */
  kill(region: Region): Promise<string[]>;
  /** SIGTERM to all, SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export async function openDrillPlatform(env: Record<string, string>, logPath: string): Promise<DrillPlatform> {
  const config = loadConfig(env);
  const host = config.connectHost;
  const log = await Deno.open(logPath, { create: true, append: true });
  const pumps: Promise<void>[] = [];
  const procs: Proc[] = [];
  // Once stop() has begun (a signal's cleanup may run it while the drill goes on), a process started would
  // outlive the drill: nothing would stop it, and its log file is closed.
  let stopping = false;
  const spec: (Deployable & { readonly env: Record<string, string> })[] = [
    {
      name: "payment-gateway",
      region: undefined,
      script: "regional/ecommerce/payment/gateway/main.ts",
      env,
      readyUrl: `http://${host}:${config.BV_PAYMENT_GATEWAY_PORT}/soap/payment?wsdl`,
    },
    ...platformDeployables(config).map((d) => ({ ...d, env: d.region ? { ...env, BV_REGION: d.region } : env })),
  ];

  const launch = (s: Deployable & { readonly env: Record<string, string> }): Proc => {
    const { child, pumped } = spawnLogged(s.script, s.env, log);
    pumps.push(pumped.catch(() => {}));
    return { ...s, child };
  };
  return {
    config,
    edgeUrl: `http://${host}:${config.BV_EDGE_PORT}`,
    ingressUrl: {
      east: `http://${host}:${config.regions.east.ingressPort}`,
      west: `http://${host}:${config.regions.west.ingressPort}`,
    },
    logPath,
    start(region) {
      if (stopping) throw new Error("Cannot start the drill's processes: the platform is stopping");
      for (const s of spec) {
        if (region !== undefined && s.region !== region) continue;
        procs.push(launch(s));
      }
    },
    async waitReady(timeoutMs) {
      await waitUntilReady(Object.fromEntries(procs.map((p) => [p.name, p.readyUrl])), timeoutMs);
    },
    async kill(region) {
      const victims = procs.filter((p) => p.region === region);
      for (const p of victims) signalChild(p.child, "SIGKILL");
      await Promise.all(victims.map((p) => p.child.status));
      for (const p of victims) procs.splice(procs.indexOf(p), 1);
      return victims.map((p) => p.name);
    },
    async stop() {
      stopping = true;
      await stopProcesses(procs.map((p) => p.child), 10_000);
      await Promise.allSettled(pumps);
      log.close();
    },
  };
}
