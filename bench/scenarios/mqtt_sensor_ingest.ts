/**
 * @module
 * MQTT sensor deltas ingested per second, with loss counted (issue 4 item 6). A fleet of mqtt.js sensors
 * (a worker thread) publishes `iot/inventory/{sku}/delta` at QoS 1 at a fixed rate to a Mosquitto of the
 * bench's own; the subject is the platform's path (sensor bridge → Kafka → batched inventory consumer →
 * PostgreSQL, `_sensor_sides.ts`), the baseline a raw mqtt.js → kafkajs forwarder with the same QoS, acks
 * and connection count. Each side's histogram holds every delta's send → applied (consumed) time; its
 * throughput is deltas received ÷ (last received − first sent). The label says what was acknowledged,
 * received, lost (acknowledged but never received) and whether the summed stock moved by exactly the
 * acknowledged deltas (no loss, no double apply).
 *
 * Isolation: a private Mosquitto, a throw-away database, Kafka topics under a run prefix (deleted after).
 */
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { createKafkaEventLog } from "../../shared/adapters/kafka/mod.ts";
import { createPostgresSql } from "../../shared/adapters/postgres/mod.ts";
import { migrate } from "../../shared/ports/sql_migrate.ts";
import { prefixedEventLog } from "../../shared/ports/prefixed_event_log.ts";
import { createTestDatabase } from "../../shared/testing/pg_database.ts";
import { realInfra } from "../../shared/testing/real_infra.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { catalogMigrations } from "../../regional/ecommerce/catalog/mod.ts";
import { applyStockAdjustment, inventoryMigrations } from "../../regional/ecommerce/inventory/mod.ts";
import { outboxMigrations } from "../../regional/ecommerce/outbox/mod.ts";
import { resultOf, type Scenario, statsFromHistogram } from "../harness.ts";
import { hostPortOf } from "./_endpoints.ts";
import { startPrivateMosquitto } from "./_private_mosquitto.ts";
import { baselineRound, type IngestEnv, type IngestRound, subjectRound } from "./_sensor_sides.ts";

const NAME = "mqtt_sensor_ingest";
/** The issue's target rate. */
const RATE_PER_SEC = Number(Deno.env.get("BV_BENCH_SENSOR_RATE") ?? 20_000);
const DURATION_MS = 4_000;
const SKUS = 20;
const FLEET_CLIENTS = 8;
/** The bridge's MQTT connections: each hands over one message at a time (see sensors/README.md). */
const BRIDGE_CONNECTIONS = Number(Deno.env.get("BV_BENCH_SENSOR_BRIDGE_CONNECTIONS") ?? 32);
const STALL_MS = 10_000;
const STOCK_PER_SKU = 1_000_000;

export const mqttSensorIngest: Scenario = {
  name: NAME,
  description: `MQTT sensor deltas at ${RATE_PER_SEC}/s (QoS 1): bridge → Kafka → batched inventory apply ` +
    "vs raw mqtt.js → kafkajs forwarder; applied per second and loss",
  async run(ctx) {
    await ctx.requireTcp(hostPortOf(realInfra.postgresAdminUrl, 5432), "PostgreSQL");
    await ctx.requireTcp(realInfra.kafkaBrokers[0], "Kafka", "deno run -A scripts/infra_up.ts east");
    const run = uniqueName("bvbench").replaceAll("-", "_").toLowerCase();
    const prefix = `${run}.`;
    const closers: (() => Promise<unknown>)[] = [];
    try {
      const mosquitto = await startPrivateMosquitto();
      closers.push(() => mosquitto.stop());
      const db = await createTestDatabase();
      closers.push(() => db.drop());
      const sql = createPostgresSql({ url: db.url, maxConnections: 4 });
      closers.push(() => sql.close());
      await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...inventoryMigrations]);
      const skus = await stockedProducts(sql, run);
      const kafkaLog = createKafkaEventLog({
        brokers: realInfra.kafkaBrokers,
        clientId: `${run}-sensors`,
        logLevel: "error",
        consumer: { maxWaitTimeMs: 100, heartbeatIntervalMs: 1_000, sessionTimeoutMs: 10_000, closeTimeoutMs: 5_000 },
      });
      closers.push(() => kafkaLog.close());
      const eventLog = prefixedEventLog(kafkaLog, prefix);

      const kafka = new Kafka({
        clientId: `${run}-raw`,
        brokers: [...realInfra.kafkaBrokers],
        logLevel: logLevel.NOTHING,
      });
      const admin = kafka.admin();
      await admin.connect();
      closers.push(async () => {
        const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
        await admin.deleteTopics({ topics, timeout: 10_000 }).catch((e) => ctx.log(`topics not deleted: ${e}`));
        await admin.disconnect();
      });
      const rawTopic = `${prefix}bench.raw-sensor`;
      await admin.createTopics({ topics: [{ topic: rawTopic, numPartitions: 3 }], waitForLeaders: true });
      const producer = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      closers.push(() => producer.disconnect());
      const rawKafka = {
        producer,
        topic: rawTopic,
        consumer: (groupId: string) =>
          kafka.consumer({ groupId, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 1_000 }),
      };

      const env: IngestEnv = {
        run,
        mqttUrl: mosquitto.url,
        mqttPid: mosquitto.pid,
        database: db.name,
        consumer: { databaseUrl: db.url, brokers: realInfra.kafkaBrokers, topicPrefix: prefix },
        skus,
        ratePerSec: RATE_PER_SEC,
        durationMs: DURATION_MS,
        fleetClients: FLEET_CLIENTS,
        bridgeConnections: BRIDGE_CONNECTIONS,
        stallMs: STALL_MS,
        log: ctx.log,
      };
      ctx.log(`subject round: ${RATE_PER_SEC}/s for ${DURATION_MS} ms, ${BRIDGE_CONNECTIONS} bridge connections`);
      const subject = await subjectRound(env, sql, eventLog, "s1");
      ctx.log(describe("subject", subject));
      const baseline = await baselineRound(env, rawKafka, "b1");
      ctx.log(describe("baseline", baseline));
      return resultOf(NAME, {
        subject: statsOf(`bridge (${BRIDGE_CONNECTIONS} conns) → Kafka → batched apply`, subject),
        baseline: statsOf(`mqtt.js → kafkajs forwarder (${BRIDGE_CONNECTIONS} conns)`, baseline),
      });
    } finally {
      for (const close of closers.reverse()) await close().catch((error) => ctx.log(`cleanup failed: ${error}`));
    }
  },
};

/** Products with plenty of stock, so no delta is refused; returns their skus. */
async function stockedProducts(sql: ReturnType<typeof createPostgresSql>, run: string): Promise<string[]> {
  const skus: string[] = [];
  for (let i = 0; i < SKUS; i++) {
    const id = crypto.randomUUID();
    const sku = `BENCH-${run.slice(-10)}-${i}`.toUpperCase();
    await sql.query`
      insert into products (id, sku, name, category, price, currency)
      values (${id}, ${sku}, ${"Sensor bench product"}, ${"bench"}, ${"9.99"}, ${"USD"})`;
    await sql.transaction((tx) =>
      applyStockAdjustment(tx, { productId: id, delta: STOCK_PER_SKU, reason: "bench stock", source: "bench" })
    );
    skus.push(sku);
  }
  return skus;
}

/** Acknowledged, received, lost and the stock check, in one phrase. */
function describe(side: string, round: IngestRound): string {
  const { fleet } = round;
  const lost = Math.max(0, fleet.acked - round.received);
  const exact = fleet.failed === 0 && round.deltaSum === fleet.ackedDeltaSum;
  return `${side}: ${fleet.acked} acked, ${fleet.failed} failed, ${fleet.skipped} skipped at the source, ` +
    `${round.received} received, ${lost} lost, stock Δ ${round.deltaSum} vs acked Δ ${fleet.ackedDeltaSum} ` +
    `(${exact ? "exact" : "MISMATCH"})${round.stalled ? `, stalled ${STALL_MS / 1000} s before the end` : ""}`;
}

function statsOf(label: string, round: IngestRound) {
  const lost = Math.max(0, round.fleet.acked - round.received);
  const exact = round.fleet.failed === 0 && round.deltaSum === round.fleet.ackedDeltaSum;
  const memory = Deno.memoryUsage();
  const noMemory = {
    rssBeforeBytes: memory.rss,
    rssAfterBytes: memory.rss,
    heapUsedBeforeBytes: memory.heapUsed,
    heapUsedAfterBytes: memory.heapUsed,
    heapUsedDeltaBytes: 0,
  };
  return statsFromHistogram(
    `${label} @${RATE_PER_SEC}/s: ${round.fleet.acked} acked, ${lost} lost, Δ ${exact ? "exact" : "MISMATCH"}` +
      (round.fleet.skipped > 0 ? `, ${round.fleet.skipped} not sent` : ""),
    round.histogram,
    { elapsedMs: round.elapsedMs, rounds: 1, cappedRounds: round.stalled ? 1 : 0, memory: noMemory },
  );
}
