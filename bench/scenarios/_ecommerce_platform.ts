/**
 * @module
 * The real platform for the e-commerce scenarios: `scripts/start_infra.ts` (every deployable its own
 * process, both regions, real Postgres/Redis/RabbitMQ/Kafka) on bench-only ports (journey offset 7) with a
 * database, vhost and Redis prefix unique to the run, seeded through the REST API. It is started by the
 * first e-commerce scenario of a run and shared; the last selected one stops it, drops its databases and
 * vhosts and deletes its Redis keys. "Selected" is read from the bench's arguments (`deno task bench
 * [name…]`); a scenario that never releases (its module failed to load) is covered by an `unload` hook that
 * still stops the processes when the bench exits.
 */
import { Redis } from "ioredis";
import postgres from "postgres";
import { type Config, loadConfig } from "../../shared/config/config.ts";
import { realInfra } from "../../shared/testing/real_infra.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { dropDatabase } from "../../shared/testing/pg_database.ts";
import { dropVhost } from "../../shared/testing/rabbit_vhost.ts";
import {
  brokerLayout,
  deleteTopicsWithPrefix,
  ensureKafka,
  isKafkaUp,
  KAFKA_REGIONS,
  mirrorPid,
} from "../../scripts/kafka/mod.ts";
import { call, journeyEnv, type RunningPlatform, startPlatform } from "../../tests/support/platform.ts";
import type { ScenarioContext } from "../harness.ts";
import { hostPortOf } from "./_endpoints.ts";

/** Every scenario that uses the platform, in run order (the same names as in main.ts). */
export const ECOMMERCE_SCENARIOS: readonly string[] = Object.freeze([
  "product_get_ingress",
  "product_get_ingress_miss",
  "order_create",
  "grpc_reserve_stock",
  "order_to_kafka",
  "graphql_product_inventory",
  "order_to_websocket",
  "flash_sale_fanout",
]);

/**
 * Journey offsets 1–4 belong to tests; 7 gives ports 27xxx. `BV_BENCH_PLATFORM_OFFSET` moves a second bench
 * run (another engineer's, on the same machine) to other ports.
 */
const PORT_OFFSET = Number(Deno.env.get("BV_BENCH_PLATFORM_OFFSET") ?? 7);
const READY_TIMEOUT_MS = 60_000;
/** Products in the catalog: the ring the GET and GraphQL scenarios walk. */
export const PRODUCT_COUNT = 200;
/** Products that orders and reservations spread over (a catalog's hot few, not a single locked row). */
export const STOCKED_FOR_ORDERS = 20;
/** Units per product: far more than a run reserves (reservations hold units for their TTL). */
const STOCK_PER_PRODUCT = 1_000_000;
const SEED_CONCURRENCY = 8;
/**
 * `full` (default): `start:infra`'s 16 processes, as deployed. `lean`: only payment gateway and east's
 * security, e-commerce and ingress (`_lean_platform.ts`), to see what the rest of the platform costs the
 * measured path on two cores. Read once: the bench is a tool, not a deployable.
 */
export const PLATFORM_MODE: "full" | "lean" = Deno.env.get("BV_BENCH_PLATFORM") === "lean" ? "lean" : "full";
export const ADMIN = Object.freeze({ email: "root@bench.test", password: "bench-admin-pass" });

export interface SeededProduct {
  readonly id: string;
  readonly sku: string;
  /** The JSON body GET /api/v1/products/{id} answers (what the cache holds). */
  readonly json: string;
}

export interface EcommercePlatform {
  readonly runId: string;
  readonly config: Config;
  /** East ingress, e.g. http://127.0.0.1:27081 */
  readonly ingressUrl: string;
  /** The e-commerce deployable of east, directly. */
  readonly ecommerceUrl: string;
  /** `host:port` of east's inventory gRPC server. */
  readonly grpcAddress: string;
  /** East's database (the platform's tables). */
  readonly pgUrl: string;
  readonly redisUrl: string;
  /** Prefix of east's keys in Redis: `<run>:east:`. */
  readonly redisPrefix: string;
  readonly kafkaBrokers: readonly string[];
  readonly customerToken: string;
  readonly products: readonly SeededProduct[];
  /** The value of a counter of the e-commerce deployable's `/metrics`, summed over matching lines. */
  counter(name: string, labelMatch?: string): Promise<number>;
}

interface Shared {
  readonly platform: RunningPlatform;
  readonly runId: string;
  readonly ready: Promise<EcommercePlatform>;
}

let shared: Shared | undefined;
const released = new Set<string>();

/** The e-commerce scenarios this bench run will run (all when no name was given). */
function selectedScenarios(): string[] {
  const named = Deno.args.filter((arg) => ECOMMERCE_SCENARIOS.includes(arg));
  return Deno.args.length === 0 ? [...ECOMMERCE_SCENARIOS] : named;
}

/**
 * The running, seeded platform; starts it on the first call of the run. Before returning it waits (bounded)
 * until east's outbox is drained, so a scenario does not start while the previous one's events are still
 * being published.
 */
export async function acquirePlatform(ctx: ScenarioContext): Promise<EcommercePlatform> {
  if (shared === undefined) {
    await ctx.requireTcp(hostPortOf(realInfra.postgresAdminUrl, 5432), "PostgreSQL");
    await ctx.requireTcp(hostPortOf(realInfra.redisUrl, 6379), "Redis");
    await ctx.requireTcp(hostPortOf(realInfra.amqpUrl, 5672), "RabbitMQ");
    await ctx.requireTcp(hostPortOf(realInfra.mqttUrl, 1883), "MQTT (Mosquitto)");
    shared = await start(ctx);
  }
  const platform = await shared.ready;
  // A deployable that died during the previous scenario is restarted by its supervisor (start:infra's or the lean
  // platform's): say so, and
  // wait until everything answers again, so one crash is reported once instead of failing every later scenario.
  // A crash caused by the previous scenario's last act (a client closing its HTTP/2 session) lands a moment later.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const crashes = (await shared.platform.tail(200)).split("\n").filter((line) => / exited with code /.test(line));
  for (const line of crashes.filter((line) => !reportedCrashes.has(line))) {
    reportedCrashes.add(line);
    ctx.log(`the platform reported: ${line.trim()} (see its log for the cause)`);
  }
  await shared.platform.waitReady(READY_TIMEOUT_MS);
  await waitForDrainedOutbox(ctx, platform.pgUrl);
  return platform;
}

/** Crash lines of start:infra already logged (the log tail is read before every scenario). */
const reportedCrashes = new Set<string>();

const QUIESCE_TIMEOUT_MS = 30_000;

async function waitForDrainedOutbox(ctx: ScenarioContext, pgUrl: string): Promise<void> {
  const sql = postgres(pgUrl, { max: 1, connect_timeout: 5, onnotice: () => {} });
  const started = performance.now();
  try {
    for (;;) {
      const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from outbox where published_at is null`;
      const waitedMs = performance.now() - started;
      if (n === 0) {
        if (waitedMs > 500) ctx.log(`waited ${(waitedMs / 1000).toFixed(1)} s for the outbox to drain`);
        return;
      }
      if (waitedMs > QUIESCE_TIMEOUT_MS) {
        ctx.log(`outbox still has ${n} unpublished rows after ${QUIESCE_TIMEOUT_MS / 1000} s; starting anyway`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function waitListening(url: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    if (performance.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Marks `scenario` done; when every selected e-commerce scenario is, stops the platform and removes what it
 * made. Call it in `finally` whether the scenario passed or not.
 */
export async function releasePlatform(ctx: ScenarioContext, scenario: string): Promise<void> {
  released.add(scenario);
  if (shared === undefined) return;
  const remaining = selectedScenarios().filter((name) => !released.has(name));
  if (remaining.length > 0) return;
  const current = shared;
  shared = undefined;
  await teardown(ctx, current);
}

async function start(ctx: ScenarioContext): Promise<Shared> {
  const started = performance.now();
  if (PLATFORM_MODE === "lean") {
    // Lean runs east's processes only: west's broker is not on any measured path.
    ctx.log("ensuring Kafka east is up (lean: west is not started)");
    await ensureKafka("east");
    if (await mirrorPid() !== undefined) {
      ctx.log(
        "MirrorMaker is running (infra:up): it mirrors this run's topics to west and takes CPU the measured " +
          "path lacks; for an east-only run: `deno task infra:down`, then `deno run -A scripts/infra_up.ts east`",
      );
    }
  } else {
    ctx.log("ensuring Kafka (east and west) is up");
    await Promise.all([ensureKafka("east"), ensureKafka("west")]);
  }
  const runId = uniqueName("bvbench").replaceAll("-", "_").toLowerCase();
  const env = journeyEnv(PORT_OFFSET, {
    BV_PG_URL: realInfra.postgresAdminUrl,
    BV_REDIS_URL: realInfra.redisUrl,
    BV_AMQP_URL: realInfra.amqpUrl,
    BV_MQTT_URL: realInfra.mqttUrl,
    BV_EAST_PG_DATABASE: `${runId}_east`,
    BV_WEST_PG_DATABASE: `${runId}_west`,
    BV_EAST_AMQP_VHOST: `${runId}_east`,
    BV_WEST_AMQP_VHOST: `${runId}_west`,
    BV_REDIS_PREFIX: `${runId}:`,
    BV_KAFKA_PREFIX: `${runId}.`,
    BV_ADMIN_EMAIL: ADMIN.email,
    BV_ADMIN_PASSWORD: ADMIN.password,
    // Long enough that the customer's token outlives every scenario of the run.
    BV_ACCESS_TOKEN_TTL_SEC: "3600",
    BV_SHUTDOWN_GRACE_MS: "3000",
    // flash_sale_fanout opens 10,000 streams on east's e-commerce; each edge's follower holds one more there.
    BV_FLASH_SALE_STREAMS_MAX: "10100",
  });
  const platform = PLATFORM_MODE === "lean"
    ? await startPlatform("bench/scenarios/_lean_platform.ts", env, ["security-east", "ecommerce-east"])
    : await startPlatform("scripts/start_infra.ts", env);
  // A bench that exits without releasing (a module that did not load) still stops the processes:
  // `stop()` sends SIGTERM synchronously; start_infra forwards it to every deployable.
  globalThis.addEventListener("unload", () => void platform.stop().catch(() => {}));
  ctx.log(`platform ${runId} (${PLATFORM_MODE}) starting (logs in ${platform.logPath})`);
  const ready = (async () => {
    try {
      await platform.waitReady(READY_TIMEOUT_MS, started);
      // The lean ingress never reports ready (its /readyz needs all six deployables): wait for it to listen.
      if (PLATFORM_MODE === "lean") await waitListening(`${platform.ingressUrl.east}/healthz`, READY_TIMEOUT_MS);
      ctx.log(`platform ready in ${((performance.now() - started) / 1000).toFixed(1)} s; seeding`);
      const seeded = await seed(ctx, platform, runId, env);
      ctx.log(`platform up and seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return seeded;
    } catch (error) {
      throw new Error(`E-commerce platform did not start: ${(error as Error).message}\n${await platform.tail(20)}`);
    }
  })();
  return { platform, runId, ready };
}

async function seed(
  ctx: ScenarioContext,
  platform: RunningPlatform,
  runId: string,
  env: Record<string, string>,
): Promise<EcommercePlatform> {
  const config = loadConfig(env);
  const east = config.regions.east;
  const ingressUrl = platform.ingressUrl.east;
  const ecommerceUrl = `http://${config.connectHost}:${east.servicePorts.ecommerce}`;
  const login = await call(`${ingressUrl}/api/v1/auth/login`, { body: ADMIN });
  expectStatus("admin login", login, 200);
  const adminToken: string = login.body.accessToken;
  const signup = await call(`${ingressUrl}/api/v1/auth/signup`, {
    body: { email: `buyer-${runId}@bench.test`, password: "correct horse battery" },
  });
  expectStatus("customer signup", signup, 201);

  const products: SeededProduct[] = new Array(PRODUCT_COUNT);
  let next = 0;
  await Promise.all(Array.from({ length: SEED_CONCURRENCY }, async () => {
    while (next < PRODUCT_COUNT) {
      const i = next++;
      const sku = `BENCH-${runId}-${i}`.toUpperCase();
      const created = await call(`${ingressUrl}/api/v1/products`, {
        token: adminToken,
        body: {
          sku,
          name: `Bench product ${i}`,
          description: "A product of the e-commerce bench",
          category: "bench",
          price: `${10 + (i % 90)}.50`,
          currency: "USD",
        },
      });
      expectStatus(`create product ${i}`, created, 201);
      const id: string = created.body.id;
      const stocked = await call(`${ingressUrl}/api/v1/inventory/${id}/adjustments`, {
        token: adminToken,
        body: { delta: STOCK_PER_PRODUCT, reason: "bench stock" },
      });
      expectStatus(`stock product ${i}`, stocked, 200);
      // GET fills the product cache and returns the exact JSON it holds.
      const response = await fetch(`${ingressUrl}/api/v1/products/${id}`, { signal: AbortSignal.timeout(5_000) });
      const json = await response.text();
      if (response.status !== 200) throw new Error(`GET product ${i} answered ${response.status}: ${json}`);
      products[i] = { id, sku, json };
    }
  }));
  ctx.log(`seeded ${PRODUCT_COUNT} products with ${STOCK_PER_PRODUCT} units each`);
  return {
    runId,
    config,
    ingressUrl,
    ecommerceUrl,
    grpcAddress: `${config.grpcConnectHost}:${east.grpcInventoryPort}`,
    pgUrl: east.pgUrl,
    redisUrl: config.BV_REDIS_URL,
    redisPrefix: east.redisPrefix,
    kafkaBrokers: east.kafkaBrokers,
    customerToken: signup.body.accessToken,
    products,
    async counter(name, labelMatch) {
      const response = await fetch(`${ecommerceUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
      const text = await response.text();
      return text.split("\n")
        .filter((line) => line.startsWith(name) && (labelMatch === undefined || line.includes(labelMatch)))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
    },
  };
}

async function teardown(ctx: ScenarioContext, current: Shared): Promise<void> {
  const started = performance.now();
  const code = await current.platform.stop().catch((error) => `stop failed: ${error}`);
  if (code !== 0) ctx.log(`platform exited with ${code}; last lines:\n${await current.platform.tail(20)}`);
  // The lean platform never made west's database and vhost.
  for (const region of PLATFORM_MODE === "lean" ? ["east"] : ["east", "west"]) {
    await dropDatabase(realInfra.postgresAdminUrl, `${current.runId}_${region}`)
      .catch((error) => ctx.log(`could not drop database ${current.runId}_${region}: ${error}`));
    await dropVhost(`${current.runId}_${region}`)
      .catch((error) => ctx.log(`could not drop vhost ${current.runId}_${region}: ${error}`));
  }
  await deleteKeys(`${current.runId}:*`).catch((error) => ctx.log(`could not delete Redis keys: ${error}`));
  for (const region of KAFKA_REGIONS) {
    // A lean run starts no west broker; one left up by infra:up may hold the run's mirrored topics.
    if (PLATFORM_MODE === "lean" && !(await isKafkaUp(brokerLayout(region).port))) continue;
    await deleteTopicsWithPrefix(region, `${current.runId}.`)
      .catch((error) => ctx.log(`could not delete the run's Kafka topics on ${region}: ${error}`));
  }
  ctx.log(`platform stopped and cleaned up in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** Deletes every Redis key matching `pattern` (SCAN, not KEYS: the server is shared). */
export async function deleteKeys(pattern: string): Promise<void> {
  const redis = new Redis(realInfra.redisUrl, { connectTimeout: 5_000, commandTimeout: 5_000, lazyConnect: true });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [nextCursor, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1_000);
      cursor = nextCursor;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

function expectStatus(what: string, reply: { status: number; body: unknown }, status: number): void {
  if (reply.status !== status) {
    throw new Error(`${what} answered ${reply.status} (expected ${status}): ${JSON.stringify(reply.body)}`);
  }
}
