/**
 * @module
 * `deno task dr:drill` (seed 000 section 11): a steady load of orders through the edge; then east dies
 * (every east process SIGKILLed, east's PostgreSQL stopped `immediate` — no checkpoint, as a crash — and
 * east's Kafka broker SIGTERM then SIGKILL at once); the edge fails over to west, west is promoted to order
 * writer; the drill prints RTO (seconds without a successful order write) and RPO (acknowledged orders
 * missing in west), brings east back, re-syncs it as west's replica and prints a parity check.
 *
 *     deno task dr:drill [--async] [--keep-kafka] [--rate=20] [--warm-sec=5] [--after-sec=6]
 *
 * `--async` runs replication without waiting for west's apply (RPO may then be above 0: the measured tail);
 * `--keep-kafka` leaves the shared east broker running. Exit 1 when an acknowledged order is missing or the
 * regions disagree at the end. Whatever happens — the end, a failure, Ctrl-C or SIGTERM (130 / 143) — one
 * cleanup brings east's PostgreSQL and Kafka back and removes what the run made: its processes, the link
 * between the regions, databases, vhosts, Kafka topics in both regions and Redis keys.
 */
import { parseArgs } from "node:util";
import { REGIONS } from "../shared/config/config.ts";
import { dropVhost, ensureVhost } from "../shared/adapters/amqp/provision.ts";
import { dropDatabase, ensureDatabase } from "../shared/adapters/postgres/provision.ts";
import { withPg } from "../shared/adapters/postgres/replication.ts";
import { deleteTopicsWithPrefix, ensureKafka, KAFKA_REGIONS, stopKafka } from "./kafka/mod.ts";
import { ensurePostgres, stopPostgres } from "./postgres/mod.ts";
import { orderDatabasesOf } from "./postgres/infra_replication.ts";
import {
  ensureOrderReplication,
  orderParity,
  prepareSynchronousWriter,
  promoteOrderWriter,
  resyncAsReplica,
  teardownOrderReplication,
} from "./postgres/order_replication.ts";
import { drillEnv, openDrillPlatform } from "./dr/drill_platform.ts";
import { cleanupOnInterrupt } from "./dr/interrupt.ts";
import { acknowledgedOrderIds, measureRto, outcomeCounts } from "./dr/measure.ts";
import { startOrderLoad } from "./dr/order_load.ts";
import { seedDrill } from "./dr/seed.ts";
import { tableParity } from "./postgres/table_parity.ts";

const RTO_TARGET_SEC = 10;
const READY_TIMEOUT_MS = 120_000;
/** East counts as down after this many failed probes in a row (one probe every 200 ms). */
const DOWN_AFTER_FAILED_PROBES = 3;
/** Bound on deleting the run's topics in one region (~40 topics plus dead-letter and mirrored twins). */
const TOPIC_CLEANUP_TIMEOUT_MS = 45_000;

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    async: { type: "boolean", default: false },
    "keep-kafka": { type: "boolean", default: false },
    rate: { type: "string", default: "20" },
    "warm-sec": { type: "string", default: "5" },
    "after-sec": { type: "string", default: "6" },
  },
});
const synchronous = !flags.async;
const rate = Number(flags.rate);
const started = performance.now();
const t = () => `${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s`;
const say = (line: string) => console.log(`[dr ${t()}] ${line}`);

const runId = `bvdr_${Date.now().toString(36)}`;
const env = drillEnv(runId, synchronous);
await Deno.mkdir(".data/logs", { recursive: true });
const platform = await openDrillPlatform(env, `.data/logs/dr-drill-${runId}.log`);
const dbs = orderDatabasesOf(platform.config);
let kafkaKilled = false;
let exitCode = 1;
const cleanup = cleanupOnInterrupt(cleanUp, { log: (line) => say(line) });
/** Before each step that changes anything: after a signal the cleanup owns the infrastructure. */
const proceed = () => cleanup.signal.throwIfAborted();
/** A pause a signal cuts short (it rejects then). */
const sleep = (ms: number) =>
  new Promise<void>((resolve, reject) => {
    proceed();
    const abort = () => (clearTimeout(timer), reject(cleanup.signal.reason));
    const timer = setTimeout(() => (cleanup.signal.removeEventListener("abort", abort), resolve()), ms);
    cleanup.signal.addEventListener("abort", abort, { once: true });
  });

/** Deletes the run's Redis keys (its prefix), 500 at a time, with `redis-cli` like the journeys' cleanup. */
async function deleteRedisKeys(prefix: string): Promise<void> {
  const scan = await new Deno.Command("redis-cli", { args: ["--scan", "--pattern", `${prefix}*`], stdout: "piped" })
    .output();
  const keys = new TextDecoder().decode(scan.stdout).split("\n").filter(Boolean);
  for (let i = 0; i < keys.length; i += 500) {
    await new Deno.Command("redis-cli", { args: ["del", ...keys.slice(i, i + 500)], stdout: "null" }).output();
  }
}

async function eastIsDown(): Promise<boolean> {
  const ingress = fetch(`${platform.ingressUrl.east}/readyz`, { signal: AbortSignal.timeout(200) })
    .then((r) => (r.body?.cancel(), false), () => true);
  const database = withPg(dbs.east, (sql) => sql`select 1`).then(() => false, () => true);
  return (await ingress) && (await database);
}

try {
  say(`run ${runId}: replication ${synchronous ? "synchronous (RPO 0)" : "asynchronous"}, ${rate} orders/s`);
  say(`process logs: ${platform.logPath}`);
  await Promise.all([
    ...REGIONS.map((r) => ensureKafka(r, { log: say })),
    ...REGIONS.map((r) => ensurePostgres(r, { log: say })),
  ]);
  proceed();
  for (const region of REGIONS) {
    await ensureDatabase(platform.config.regions[region].pgAdminUrl, platform.config.regions[region].pgDatabase);
    await ensureVhost(platform.config.regions[region].amqpVhost);
  }
  if (synchronous) await prepareSynchronousWriter(dbs.east);
  proceed();
  platform.start();
  await platform.waitReady(READY_TIMEOUT_MS);
  say("platform ready");
  proceed();
  await ensureOrderReplication(dbs, { synchronous, log: say });
  const { token, productId } = await seedDrill({
    eastIngressUrl: platform.ingressUrl.east,
    edgeUrl: platform.edgeUrl,
    admin: { email: env.BV_ADMIN_EMAIL, password: env.BV_ADMIN_PASSWORD },
    runId,
  });
  const load = startOrderLoad({
    edgeUrl: platform.edgeUrl,
    token,
    productId,
    ratePerSec: rate,
    maxInFlight: 64,
    timeoutMs: 5_000,
  });
  say(`load running through the edge; east fails in ${flags["warm-sec"]} s`);
  await sleep(Number(flags["warm-sec"]) * 1_000);

  proceed(); // east must not be killed once the cleanup has begun: nothing would bring it back
  const failureMs = performance.now();
  const killed = await platform.kill("east");
  await stopPostgres("east", { mode: "immediate", log: say });
  if (!flags["keep-kafka"]) {
    kafkaKilled = true;
    await stopKafka("east", { graceMs: 0, log: say });
  }
  say(`east is down: SIGKILL ${killed.join(", ")}; postgres immediate stop${kafkaKilled ? "; kafka killed" : ""}`);

  let failedProbes = 0;
  while (failedProbes < DOWN_AFTER_FAILED_PROBES) {
    failedProbes = (await eastIsDown()) ? failedProbes + 1 : 0;
    await sleep(200);
  }
  const detectedMs = performance.now();
  const promotion = await promoteOrderWriter(dbs, "west", say);
  const promotedMs = performance.now();
  say(
    `detected after ${((detectedMs - failureMs) / 1000).toFixed(2)} s; promoted in ${
      ((promotedMs - detectedMs) / 1000).toFixed(2)
    } s; sequences ${JSON.stringify(promotion.sequences)}`,
  );
  await sleep(Number(flags["after-sec"]) * 1_000);
  const attempts = await load.stop();

  const timeline = attempts.map((a) => ({
    ...a,
    sentMs: Math.round(a.sentMs - failureMs),
    doneMs: Math.round(a.doneMs - failureMs),
  }));
  await Deno.writeTextFile(
    `.data/logs/dr-drill-${runId}.json`,
    JSON.stringify(
      { detectedMs: detectedMs - failureMs, promotedMs: promotedMs - failureMs, attempts: timeline },
      null,
      1,
    ),
  );
  const rto = measureRto(attempts, failureMs);
  const acked = acknowledgedOrderIds(attempts);
  const inWest = await withPg(
    dbs.west,
    async (sql) =>
      new Set(
        (await sql`select id::text as id from orders where id = any(${acked}::uuid[])`).map((r) => r.id as string),
      ),
  );
  const lost = acked.filter((id) => !inWest.has(id));
  say(`outcomes: ${JSON.stringify(outcomeCounts(attempts))} (${load.skipped()} sends skipped: 64 in flight)`);
  say(
    `RTO ${
      rto.rtoSec ?? "n/a"
    } s without a successful order write (target < ${RTO_TARGET_SEC} s; failure → first write ${
      rto.failureToFirstWriteSec ?? "n/a"
    } s)`,
  );
  say(
    `RPO ${lost.length} of ${acked.length} acknowledged orders missing in west${
      lost.length > 0 ? `: ${lost.slice(0, 5).join(", ")}…` : ""
    }`,
  );

  proceed();
  say("bringing east back as west's replica");
  await ensurePostgres("east", { log: say });
  if (kafkaKilled) await ensureKafka("east", { log: say });
  const resync = await resyncAsReplica(dbs, "east", { log: say });
  proceed();
  platform.start("east");
  await platform.waitReady(READY_TIMEOUT_MS);
  const probe = await fetch(`${platform.ingressUrl.east}/api/v1/orders`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${token}`,
      "idempotency-key": crypto.randomUUID(),
    },
    body: JSON.stringify({ items: [{ productId, qty: 1 }] }),
    signal: AbortSignal.timeout(10_000),
  });
  const probeBody = await probe.json();
  say(
    `order POST to east after failback: ${probe.status}, written by ${
      probe.headers.get("x-bv-order-writer") ?? "east"
    }`,
  );
  let parity = await orderParity(dbs);
  for (let i = 0; i < 50 && (parity.missingInEast.length > 0 || parity.missingInWest.length > 0); i++) {
    await sleep(200);
    parity = await orderParity(dbs);
  }
  say(
    `parity: east ${parity.east} orders, west ${parity.west}; missing in east ${parity.missingInEast.length}, in west ${parity.missingInWest.length}; east discarded ${resync.discardedOrderIds.length} orders west never had`,
  );
  // Beyond order ids: every replicated table (catalog, stock, reservations, carts, keys) row for row.
  let tables = await tableParity(dbs);
  for (let i = 0; i < 50 && tables.some((t) => !t.equal); i++) {
    await sleep(200);
    tables = await tableParity(dbs);
  }
  const unequal = tables.filter((t) => !t.equal);
  say(
    `table parity: ${tables.length - unequal.length}/${tables.length} replicated tables equal${
      unequal.map((t) => `; ${t.table} east ${t.east.rows} rows, west ${t.west.rows}`).join("")
    }`,
  );
  const ok = lost.length === 0 && parity.missingInEast.length === 0 && parity.missingInWest.length === 0 &&
    unequal.length === 0 && probe.status === 201 && probeBody.id !== undefined;
  console.log(
    `\nDR drill ${ok ? "PASSED" : "FAILED"}: RTO ${rto.rtoSec ?? "n/a"} s (target < ${RTO_TARGET_SEC} s${
      rto.rtoSec !== undefined && rto.rtoSec < RTO_TARGET_SEC ? ", met" : ", NOT met"
    }), RPO ${lost.length} acknowledged orders lost of ${acked.length}, parity ${parity.east}/${parity.west}`,
  );
  exitCode = ok ? 0 : 1;
} catch (error) {
  if (!cleanup.signal.aborted) console.error(`[dr] failed: ${(error as Error).stack ?? error}`);
} finally {
  await cleanup.run();
}
Deno.exit(cleanup.exitCode ?? exitCode);

/**
 * Everything a run leaves, removed once (`cleanup.run()`: the end of the script or a signal). Each step is
 * bounded and logs its own failure, so one that fails does not keep the next from running.
 */
async function cleanUp(): Promise<void> {
  const attempt = (what: string, work: Promise<unknown>) =>
    work.then(
      () => {},
      (error) => console.error(`[dr] cleanup: could not ${what}: ${(error as Error)?.message ?? error}`),
    );
  await attempt("stop the platform's processes", platform.stop());
  if (kafkaKilled) await attempt("restart east's Kafka", ensureKafka("east", { log: say }));
  await attempt("restart east's PostgreSQL", ensurePostgres("east", { log: () => {} }));
  await attempt("unlink the regions' databases", teardownOrderReplication(dbs));
  for (const region of REGIONS) {
    const { pgAdminUrl, pgDatabase, amqpVhost } = platform.config.regions[region];
    await attempt(`drop database ${pgDatabase}`, dropDatabase(pgAdminUrl, pgDatabase));
    await attempt(`drop vhost ${amqpVhost}`, dropVhost(amqpVhost));
  }
  // ~40 topics × 3 partitions per run: left behind, every run (`deno task test` runs the drill) slows the broker.
  await Promise.all(KAFKA_REGIONS.map((region) =>
    attempt(
      `delete the run's Kafka topics in ${region}`,
      withTimeout(deleteTopicsWithPrefix(region, `${runId}.`), TOPIC_CLEANUP_TIMEOUT_MS),
    )
  ));
  await attempt("delete the run's Redis keys", deleteRedisKeys(`${runId}:`));
  say("cleaned up");
}

/** `work`, or a rejection after `ms` (the work itself is left to finish or to die with the process). */
function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
