/**
 * @module
 * Starts the platform as a developer would (`scripts/start.ts` or `scripts/start_infra.ts`) on ports and
 * data locations of its own, so a journey never collides with a running platform or another run.
 */
import { loadConfig, REGIONS, SERVICES } from "../../shared/config/config.ts";
import { dropDatabase } from "../../shared/testing/pg_database.ts";
import { dropVhost } from "../../shared/testing/rabbit_vhost.ts";
import { realInfra } from "../../shared/testing/real_infra.ts";
import { clusterUrl } from "../../scripts/postgres/mod.ts";
import { teardownOrderReplication } from "../../scripts/postgres/order_replication.ts";

export interface RunningPlatform {
  readonly env: Record<string, string>;
  readonly edgeUrl: string;
  readonly ingressUrl: Readonly<Record<"east" | "west", string>>;
  /** Every process's `/readyz` URL, by process name. */
  readonly readyUrls: Readonly<Record<string, string>>;
  readonly logPath: string;
  /** Polls every `/readyz` until all answer 200; resolves with the elapsed ms since `since`. */
  waitReady(timeoutMs: number, since?: number): Promise<number>;
  /** SIGTERM, then waits for the exit; resolves with the exit code. */
  stop(): Promise<number>;
  /** SIGKILL (a crash: nothing is drained or closed); resolves when the process is gone. */
  crash(): Promise<void>;
  /** The last lines the platform printed (for failure messages). */
  tail(lines?: number): Promise<string>;
}

/** Ports for a journey: distinct from the defaults so a developer's running platform is untouched. */
export function journeyEnv(offset: number, extra: Record<string, string> = {}): Record<string, string> {
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
    BV_LOG_LEVEL: "warn",
    ...extra,
  };
}

/**
 * Starts `script` (the whole platform, or one deployable's `main.ts`) with `env`. `waitFor` names the
 * processes whose `/readyz` `waitReady` polls: all of them by default.
 */
export async function startPlatform(
  script: string,
  env: Record<string, string>,
  waitFor?: readonly string[],
): Promise<RunningPlatform> {
  const config = loadConfig(env);
  const host = config.BV_HOST;
  const readyUrls: Record<string, string> = { edge: `http://${host}:${config.BV_EDGE_PORT}/readyz` };
  for (const region of REGIONS) {
    const r = config.regions[region];
    readyUrls[`ingress-${region}`] = `http://${host}:${r.ingressPort}/readyz`;
    for (const service of SERVICES) {
      readyUrls[`${service}-${region}`] = `http://${host}:${r.servicePorts[service]}/readyz`;
    }
  }
  if (waitFor) {
    for (const name of Object.keys(readyUrls)) if (!waitFor.includes(name)) delete readyUrls[name];
  }
  await Deno.mkdir(".data/logs", { recursive: true });
  const logPath = `.data/logs/journey-${Date.now()}-${script.replace(/\W/g, "_")}.log`;
  const logFile = await Deno.open(logPath, { create: true, write: true, truncate: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Both streams into one log file; the pipes must be drained or the child would block on a full pipe.
  const pumps = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const chunk of stream) await logFile.write(chunk);
  }));
  let exited = false;
  let logClosed = false;
  const closeLog = () => {
    if (!logClosed) logFile.close();
    logClosed = true;
  };
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const platform: RunningPlatform = {
    env,
    edgeUrl: `http://${host}:${config.BV_EDGE_PORT}`,
    ingressUrl: {
      east: `http://${host}:${config.regions.east.ingressPort}`,
      west: `http://${host}:${config.regions.west.ingressPort}`,
    },
    readyUrls,
    logPath,
    async waitReady(timeoutMs, since = performance.now()) {
      const pending = new Set(Object.keys(readyUrls));
      while (pending.size > 0) {
        if (exited) throw new Error(`platform exited before ready:\n${await platform.tail()}`);
        if (performance.now() - since > timeoutMs) {
          throw new Error(`not ready within ${timeoutMs} ms: ${[...pending].join(", ")}\n${await platform.tail()}`);
        }
        await Promise.all([...pending].map(async (name) => {
          try {
            const response = await fetch(readyUrls[name], { signal: AbortSignal.timeout(1_500) });
            await response.body?.cancel();
            if (response.ok) pending.delete(name);
          } catch {
            // Not listening yet.
          }
        }));
        if (pending.size > 0) await new Promise((r) => setTimeout(r, 200));
      }
      return performance.now() - since;
    },
    async stop() {
      if (!exited) child.kill("SIGTERM");
      const timer = setTimeout(() => !exited && child.kill("SIGKILL"), 30_000);
      const s = await status;
      clearTimeout(timer);
      await pumps;
      closeLog();
      return s.code;
    },
    async crash() {
      if (!exited) child.kill("SIGKILL");
      await status;
      await pumps;
      closeLog();
    },
    async tail(lines = 40) {
      const text = await Deno.readTextFile(logPath).catch(() => "");
      return text.split("\n").slice(-lines).join("\n");
    },
  };
  return platform;
}

/** JSON request helper for journeys. */
export async function call(
  url: string,
  init: { method?: string; body?: unknown; token?: string; headers?: Record<string, string> } = {},
  // deno-lint-ignore no-explicit-any -- journeys read whatever JSON the platform answers and assert on it.
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.body !== undefined) headers["content-type"] = "application/json";
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  const response = await fetch(url, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // Not JSON: keep the text.
  }
  return { status: response.status, headers: response.headers, body };
}

/** The admin account journeys log in with. */
export const JOURNEY_ADMIN = Object.freeze({ email: "root@journey.test", password: "journey-admin-pass" });

/**
 * Environment for a journey on the real services, isolated by `id`: its own databases, vhosts and Redis
 * key prefix per region (created by `start:infra`, removed by {@linkcode dropIsolatedInfra}).
 */
export function isolatedInfraEnv(id: string, offset: number): Record<string, string> {
  return journeyEnv(offset, {
    BV_EAST_PG_DATABASE: `${id}_east`,
    BV_WEST_PG_DATABASE: `${id}_west`,
    // Each region on its project cluster (scripts/postgres), as start:infra runs by default.
    BV_EAST_PG_URL: clusterUrl("east"),
    BV_WEST_PG_URL: clusterUrl("west"),
    BV_EAST_AMQP_VHOST: `${id}_east`,
    BV_WEST_AMQP_VHOST: `${id}_west`,
    BV_REDIS_PREFIX: `${id}:`,
    BV_KAFKA_PREFIX: `${id}.`,
    BV_ADMIN_EMAIL: JOURNEY_ADMIN.email,
    BV_ADMIN_PASSWORD: JOURNEY_ADMIN.password,
  });
}

/** Drops what {@linkcode isolatedInfraEnv} made: databases, vhosts and Redis keys. */
export async function dropIsolatedInfra(id: string): Promise<void> {
  // A database with a subscription or a replication slot cannot be dropped: unlink the regions first.
  await teardownOrderReplication({ east: clusterUrl("east", `${id}_east`), west: clusterUrl("west", `${id}_west`) })
    .catch(() => {});
  for (const region of ["east", "west"] as const) {
    await dropDatabase(clusterUrl(region), `${id}_${region}`).catch(() => {});
  }
  for (const region of ["east", "west"]) {
    await dropDatabase(realInfra.postgresAdminUrl, `${id}_${region}`).catch(() => {});
    await dropVhost(`${id}_${region}`).catch(() => {});
  }
  const redis = new Deno.Command("redis-cli", {
    args: ["--scan", "--pattern", `${id}:*`],
    stdout: "piped",
    stderr: "null",
  });
  const keys = new TextDecoder().decode((await redis.output()).stdout).split("\n").filter(Boolean);
  for (let i = 0; i < keys.length; i += 500) {
    await new Deno.Command("redis-cli", { args: ["del", ...keys.slice(i, i + 500)], stdout: "null" }).output();
  }
}
