/**
 * @module
 * The platform the DR drill runs on: every deployable as its own process (as `start:infra` runs them), but
 * without a supervisor that would restart what the drill kills, on ports and databases of its own (the
 * project clusters, a Kafka topic prefix, vhosts and a Redis prefix unique to the run), so a developer's
 * running platform is untouched. Output of every process goes to one log file.
 */
import { type Config, loadConfig, type Region, REGIONS, SERVICES } from "../../shared/config/config.ts";
import { clusterUrl } from "../postgres/mod.ts";

/** Port base of the drill's processes (journeys use 20000 + offset × 1000; the drill takes offset 9, below the
 * ephemeral port range (32768+) where an outgoing connection could already hold a listening port). */
const PORT_BASE = 29_000;

/** The environment of a drill run named `id` (lower-case letters, digits, "_"). */
export function drillEnv(id: string, synchronous: boolean): Record<string, string> {
  return {
    ...Deno.env.toObject(),
    BV_MODE: "infra",
    BV_LOG_LEVEL: "warn",
    BV_EDGE_PORT: String(PORT_BASE + 80),
    BV_EAST_INGRESS_PORT: String(PORT_BASE + 81),
    BV_WEST_INGRESS_PORT: String(PORT_BASE + 82),
    BV_EAST_SERVICE_PORT_BASE: String(PORT_BASE + 110),
    BV_WEST_SERVICE_PORT_BASE: String(PORT_BASE + 210),
    BV_EAST_GRPC_INVENTORY_PORT: String(PORT_BASE + 51),
    BV_WEST_GRPC_INVENTORY_PORT: String(PORT_BASE + 52),
    BV_PAYMENT_GATEWAY_PORT: String(PORT_BASE + 89),
    BV_EAST_PG_URL: clusterUrl("east"),
    BV_WEST_PG_URL: clusterUrl("west"),
    BV_EAST_PG_DATABASE: `${id}_east`,
    BV_WEST_PG_DATABASE: `${id}_west`,
    BV_EAST_AMQP_VHOST: `${id}_east`,
    BV_WEST_AMQP_VHOST: `${id}_west`,
    BV_REDIS_PREFIX: `${id}:`,
    BV_KAFKA_PREFIX: `${id}.`,
    BV_ADMIN_EMAIL: "drill-admin@bitvelocity.local",
    BV_ADMIN_PASSWORD: "drill-admin-password",
    // Outlives the whole drill, so the load generator never refreshes mid-failover.
    BV_ACCESS_TOKEN_TTL_SEC: "3600",
    BV_SHUTDOWN_GRACE_MS: "3000",
    BV_ORDER_REPLICATION: synchronous ? "sync" : "async",
  };
}

interface Proc {
  readonly name: string;
  readonly region: Region | undefined;
  readonly readyUrl: string;
  child: Deno.ChildProcess;
  readonly script: string;
  readonly env: Record<string, string>;
}

export interface DrillPlatform {
  readonly config: Config;
  readonly edgeUrl: string;
  readonly ingressUrl: Readonly<Record<Region, string>>;
  readonly logPath: string;
  /** Starts the processes of `region` (all regions and the shared ones when undefined). */
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
  const host = config.BV_HOST;
  const log = await Deno.open(logPath, { create: true, append: true });
  const pumps: Promise<void>[] = [];
  const procs: Proc[] = [];
  const spec: Omit<Proc, "child">[] = [
    {
      name: "payment-gateway",
      region: undefined,
      script: "regional/ecommerce/payment/gateway/main.ts",
      env,
      readyUrl: `http://${host}:${config.BV_PAYMENT_GATEWAY_PORT}/soap/payment?wsdl`,
    },
  ];
  for (const region of REGIONS) {
    const r = config.regions[region];
    const regionEnv = { ...env, BV_REGION: region };
    for (const service of SERVICES) {
      const readyUrl = `http://${host}:${r.servicePorts[service]}/readyz`;
      spec.push({
        name: `${service}-${region}`,
        region,
        script: `regional/${service}/main.ts`,
        env: regionEnv,
        readyUrl,
      });
    }
    const readyUrl = `http://${host}:${r.ingressPort}/readyz`;
    spec.push({ name: `ingress-${region}`, region, script: "regional/ingress/main.ts", env: regionEnv, readyUrl });
  }
  spec.push({
    name: "edge",
    region: undefined,
    script: "edge/main.ts",
    env,
    readyUrl: `http://${host}:${config.BV_EDGE_PORT}/readyz`,
  });

  const launch = (s: Omit<Proc, "child">): Proc => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", s.script],
      env: s.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Both streams into the log; the pipes must be drained or the child would block on a full pipe.
    for (const stream of [child.stdout, child.stderr]) {
      pumps.push(
        (async () => {
          for await (const chunk of stream) await log.write(chunk);
        })().catch(() => {}),
      );
    }
    return { ...s, child };
  };
  const alive = (p: Proc) => procs.includes(p);
  return {
    config,
    edgeUrl: `http://${host}:${config.BV_EDGE_PORT}`,
    ingressUrl: {
      east: `http://${host}:${config.regions.east.ingressPort}`,
      west: `http://${host}:${config.regions.west.ingressPort}`,
    },
    logPath,
    start(region) {
      for (const s of spec) {
        if (region !== undefined && s.region !== region) continue;
        procs.push(launch(s));
      }
    },
    async waitReady(timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      const pending = new Set(procs.filter(alive));
      while (pending.size > 0) {
        if (performance.now() > deadline) {
          throw new Error(`Not ready within ${timeoutMs} ms: ${[...pending].map((p) => p.name).join(", ")}`);
        }
        await Promise.all([...pending].map(async (p) => {
          try {
            const response = await fetch(p.readyUrl, { signal: AbortSignal.timeout(1_500) });
            await response.body?.cancel();
            if (response.ok) pending.delete(p);
          } catch {
            // Not listening yet.
          }
        }));
        if (pending.size > 0) await new Promise((r) => setTimeout(r, 200));
      }
    },
    async kill(region) {
      const victims = procs.filter((p) => p.region === region);
      for (const p of victims) {
        try {
          p.child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await Promise.all(victims.map((p) => p.child.status));
      for (const p of victims) procs.splice(procs.indexOf(p), 1);
      return victims.map((p) => p.name);
    },
    async stop() {
      for (const p of [...procs].reverse()) {
        try {
          p.child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
      }
      const timer = setTimeout(() =>
        procs.forEach((p) => {
          try {
            p.child.kill("SIGKILL");
          } catch { /* gone */ }
        }), 10_000);
      await Promise.allSettled(procs.map((p) => p.child.status));
      clearTimeout(timer);
      await Promise.allSettled(pumps);
      log.close();
    },
  };
}
