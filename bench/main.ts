/**
 * @module
 * `deno task bench [scenario…]`: runs every scenario (or the named ones) one after another, prints the
 * Markdown table on stdout and writes `bench/results/<ISO time>.json` and `.md`. Scenarios are loaded one
 * at a time, so a scenario whose module fails to load fails alone. Exit code 0 only when every selected
 * scenario ran or was skipped because its infrastructure is not reachable.
 */
import { type Scenario, type ScenarioContext, ScenarioSkipped } from "./harness.ts";
import { type BenchReport, exitCodeOf, markdownReport, markdownTable, type ScenarioOutcome } from "./report.ts";

/** Every scenario, in run order (cheap in-process ones first, the broker round trips last). */
const SCENARIOS: Readonly<Record<string, () => Promise<Scenario>>> = {
  cache_memory: async () => (await import("./scenarios/cache_memory.ts")).cacheMemory,
  event_log_memory: async () => (await import("./scenarios/event_log_memory.ts")).eventLogMemory,
  http_service_app: async () => (await import("./scenarios/http_service_app.ts")).httpServiceApp,
  sql_postgres: async () => (await import("./scenarios/sql_postgres.ts")).sqlPostgres,
  sql_pglite: async () => (await import("./scenarios/sql_pglite.ts")).sqlPglite,
  cache_redis: async () => (await import("./scenarios/cache_redis.ts")).cacheRedis,
  mqtt_mosquitto: async () => (await import("./scenarios/mqtt_mosquitto.ts")).mqttMosquitto,
  work_queue_amqp: async () => (await import("./scenarios/work_queue_amqp.ts")).workQueueAmqp,
  event_log_kafka: async () => (await import("./scenarios/event_log_kafka.ts")).eventLogKafka,
  // Real-time ingest on its own private Mosquitto, database and Kafka prefix (not the shared platform).
  mqtt_sensor_ingest: async () => (await import("./scenarios/mqtt_sensor_ingest.ts")).mqttSensorIngest,
  cross_region_events: async () => (await import("./scenarios/cross_region_events.ts")).crossRegionEvents,
  edge_overhead: async () => (await import("./scenarios/edge_overhead.ts")).edgeOverhead,
  edge_cache_hit: async () => (await import("./scenarios/edge_cache_hit.ts")).edgeCacheHit,
  edge_sse_fanout: async () => (await import("./scenarios/edge_sse_fanout.ts")).edgeSseFanout,
  edge_failover: async () => (await import("./scenarios/edge_failover.ts")).edgeFailover,
  // E-commerce on the real platform (started once by the first of these, stopped after the last one).
  product_get_ingress: async () => (await import("./scenarios/product_get_ingress.ts")).productGetIngress,
  product_get_ingress_miss: async () => (await import("./scenarios/product_get_ingress.ts")).productGetIngressMiss,
  order_create: async () => (await import("./scenarios/order_create.ts")).orderCreate,
  grpc_reserve_stock: async () => (await import("./scenarios/grpc_reserve_stock.ts")).grpcReserveStock,
  order_to_kafka: async () => (await import("./scenarios/order_to_kafka.ts")).orderToKafka,
  graphql_product_inventory: async () =>
    (await import("./scenarios/graphql_product_inventory.ts")).graphqlProductInventory,
  // Real-time push on the same platform (issue 4 item 6).
  order_to_websocket: async () => (await import("./scenarios/order_to_websocket.ts")).orderToWebsocket,
  flash_sale_fanout: async () => (await import("./scenarios/flash_sale_fanout.ts")).flashSaleFanout,
  // Order replication east → west on the project clusters (scripts/postgres).
  order_replication_lag: async () => (await import("./scenarios/order_replication_lag.ts")).orderReplicationLag,
  order_commit_sync: async () => (await import("./scenarios/order_replication_lag.ts")).orderCommitSync,
};

/**
 * Backstop for a scenario that hangs despite its own caps (a lost connection in setup, say): it is reported
 * as failed and the run goes on. Each scenario's own caps keep it well under this.
 */
const SCENARIO_WALL_MS_MAX = 90_000;
/** How long `requireTcp` waits for a connection before calling the service unreachable. */
const TCP_PROBE_TIMEOUT_MS = 2_000;
const RESULTS_DIR = new URL("./results/", import.meta.url);

async function main(args: readonly string[]): Promise<number> {
  const unknown = args.filter((name) => !(name in SCENARIOS));
  if (unknown.length > 0) {
    console.error(`Unknown scenario "${unknown[0]}"; use one of: ${Object.keys(SCENARIOS).join(", ")}`);
    return 2;
  }
  const selected = args.length > 0 ? [...new Set(args)] : Object.keys(SCENARIOS);
  const startedAt = new Date();
  const started = performance.now();
  const outcomes: ScenarioOutcome[] = [];
  for (const name of selected) {
    const outcome = await runScenario(name, SCENARIOS[name]);
    const detail = outcome.status === "ran" ? "" : `: ${outcome.reason}`;
    console.error(`[bench ${name}] ${outcome.status} in ${(outcome.wallMs / 1000).toFixed(1)} s${detail}`);
    outcomes.push(outcome);
  }
  const report: BenchReport = {
    startedAt: startedAt.toISOString(),
    wallMs: Math.round(performance.now() - started),
    command: ["deno task bench", ...args].join(" "),
    environment: { deno: Deno.version.deno, os: Deno.build.os, cpus: navigator.hardwareConcurrency },
    outcomes,
  };
  console.log(markdownTable(outcomes));
  const base = await writeResults(report);
  console.error(`[bench] ${(report.wallMs / 1000).toFixed(1)} s; results in ${base}.json and ${base}.md`);
  return exitCodeOf(outcomes);
}

async function runScenario(name: string, load: () => Promise<Scenario>): Promise<ScenarioOutcome> {
  const started = performance.now();
  const wallMs = () => Math.round(performance.now() - started);
  let description = "(module did not load)";
  try {
    const scenario = await load();
    description = scenario.description;
    const result = await withDeadline(scenario.run(contextFor(name)), SCENARIO_WALL_MS_MAX, name);
    return { scenario: name, description, wallMs: wallMs(), status: "ran", result };
  } catch (error) {
    if (error instanceof ScenarioSkipped) {
      return { scenario: name, description, wallMs: wallMs(), status: "skipped", reason: error.message };
    }
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return { scenario: name, description, wallMs: wallMs(), status: "failed", reason };
  }
}

function contextFor(name: string): ScenarioContext {
  return {
    log: (message) => console.error(`[bench ${name}] ${message}`),
    requireTcp: async (hostPort, what, hint) => {
      const problem = await probeTcp(hostPort);
      if (problem !== undefined) {
        throw new ScenarioSkipped(`${what} at ${hostPort} is not reachable (${problem})${hint ? `; ${hint}` : ""}`);
      }
    },
  };
}

/** Resolves with undefined when a TCP connection opens within the probe timeout, else with why not. */
async function probeTcp(hostPort: string): Promise<string | undefined> {
  const colon = hostPort.lastIndexOf(":");
  const hostname = hostPort.slice(0, colon);
  const port = Number(hostPort.slice(colon + 1));
  if (colon < 1 || !Number.isInteger(port)) throw new TypeError(`Expected "host:port", got "${hostPort}"`);
  let timedOut = false;
  const connecting = Deno.connect({ hostname, port });
  // A connection that opens after the timeout is closed as soon as it does.
  connecting.then((connection) => timedOut && connection.close(), () => {});
  try {
    (await withDeadline(connecting, TCP_PROBE_TIMEOUT_MS, `connect to ${hostPort}`)).close();
    return undefined;
  } catch (error) {
    timedOut = true;
    return error instanceof Error ? error.message : String(error);
  }
}

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Writes `<ISO 8601 basic time>.json` and `.md` (basic format: no colons in file names). */
async function writeResults(report: BenchReport): Promise<string> {
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const stamp = report.startedAt.replaceAll("-", "").replaceAll(":", "");
  const base = new URL(stamp, RESULTS_DIR);
  await Deno.writeTextFile(new URL(`${stamp}.json`, RESULTS_DIR), JSON.stringify(report, null, 2) + "\n");
  await Deno.writeTextFile(new URL(`${stamp}.md`, RESULTS_DIR), markdownReport(report));
  return base.pathname;
}

if (import.meta.main) {
  // Explicit exit: a scenario that hit the backstop may still hold sockets that would keep the process up.
  Deno.exit(await main(Deno.args));
}
