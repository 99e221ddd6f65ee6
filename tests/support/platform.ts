/**
 * @module
 * Starts the platform as a developer would (`scripts/start.ts` or `scripts/start_infra.ts`) on ports and
 * data locations of its own, so a journey never collides with a running platform or another run.
 */
import { loadConfig } from "../../shared/config/config.ts";
import { dropDatabase } from "../../shared/testing/pg_database.ts";
import { dropVhost } from "../../shared/testing/rabbit_vhost.ts";
import { realInfra } from "../../shared/testing/real_infra.ts";
import { clusterUrl } from "../../scripts/postgres/mod.ts";
import { deleteTopicsWithPrefix, KAFKA_REGIONS } from "../../scripts/kafka/mod.ts";
import {
  generateInternalSigningKey,
  isolationEnv,
  platformDeployables,
  platformPortEnv,
  spawnLogged,
  waitUntilReady,
} from "../../scripts/platform_processes.ts";
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

/**
 * Ports for a journey: distinct from the defaults so a developer's running platform is untouched. One signing key
 * per call: every process started with this env (a start script's or a single deployable) shares it.
 */
export function journeyEnv(offset: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...platformPortEnv(offset),
    BV_LOG_LEVEL: "warn",
    BV_INTERNAL_SIGNING_KEY: generateInternalSigningKey(),
    // No journey tests the drain delay (lifecycle_test.ts does); each stop would otherwise wait 4 s for probes.
    BV_DRAIN_DELAY_MS: "0",
    // Test partner receivers listen on loopback, which the production default (`public`) refuses.
    BV_WEBHOOK_EGRESS: "any",
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
  const host = config.connectHost;
  const readyUrls: Record<string, string> = Object.fromEntries(
    platformDeployables(config).map((d) => [d.name, d.readyUrl]),
  );
  if (waitFor) {
    for (const name of Object.keys(readyUrls)) if (!waitFor.includes(name)) delete readyUrls[name];
  }
  await Deno.mkdir(".data/logs", { recursive: true });
  const logPath = `.data/logs/journey-${Date.now()}-${script.replace(/\W/g, "_")}.log`;
  const logFile = await Deno.open(logPath, { create: true, write: true, truncate: true });
  const { child, pumped: pumps } = spawnLogged(script, env, logFile);
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
      const beforeRound = async () => {
        if (exited) throw new Error(`platform exited before ready:\n${await platform.tail()}`);
      };
      try {
        return await waitUntilReady(readyUrls, timeoutMs, { since, beforeRound });
      } catch (error) {
        if (exited) throw error;
        throw new Error(`${(error as Error).message}\n${await platform.tail()}`);
      }
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
    // Each region on its project cluster (scripts/postgres), as start:infra runs by default.
    ...isolationEnv(id),
    BV_ADMIN_EMAIL: JOURNEY_ADMIN.email,
    BV_ADMIN_PASSWORD: JOURNEY_ADMIN.password,
  });
}

/** Drops what {@linkcode isolatedInfraEnv} made: databases, vhosts, Kafka topics and Redis keys. */
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
  for (const region of KAFKA_REGIONS) await deleteTopicsWithPrefix(region, `${id}.`).catch(() => {});
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
