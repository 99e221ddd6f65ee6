/**
 * @module
 * The two sides of `mqtt_sensor_ingest`, each one round: the fleet (a worker) publishes at a fixed rate,
 * and the side's receiver must account for every acknowledged delta.
 *
 * - Subject: `startSensorBridge` (several MQTT connections sharing `$share/…`, persistent sessions) → Kafka
 *   → `startSensorDeltaConsumer` (batched, exactly once by message id) → PostgreSQL, plus the outbox relay;
 *   the consumer and relay run on a worker thread (`_sensor_consumer_worker.ts`), as a separate deployable
 *   would, so the bridge (main thread) and they use both cores.
 *   A delta's time is ledger `created_at` (its transaction's start) − the send time the payload carries.
 * - Baseline: raw mqtt.js connections (the same number, same shared subscription, QoS 1, PUBACK only after
 *   Kafka acked, like the bridge) → one kafkajs idempotent producer (acks=all, one send in flight with
 *   whatever is waiting) → a raw kafkajs consumer; a delta's time is its arrival there − the send time.
 */
import { Buffer } from "node:buffer";
import type { Consumer, Producer } from "kafkajs";
import mqtt from "mqtt";
import { createMqttBus } from "../../shared/adapters/mqtt/mod.ts";
import type { EventLog, MqttBus, Sql } from "../../shared/ports/mod.ts";
import { startSensorBridge } from "../../regional/ecommerce/sensors/mod.ts";
import { createLatencyHistogram } from "../harness.ts";
import type { FleetReport, FleetRequest } from "./_sensor_publisher_worker.ts";
import type { SensorConsumerReply, SensorConsumerRequest } from "./_sensor_consumer_worker.ts";
import { cpuPerDeltaLine, startSensorCpuMeter } from "./_sensor_cpu.ts";
import { joinedAndFetched, withTimeout } from "./_kafka_raw.ts";
import { nextMessage } from "./_worker.ts";
import type { Histogram } from "hdr-histogram-js";

/** What one round of either side measured. */
export interface IngestRound {
  readonly fleet: FleetReport;
  /** Deltas the receiver accounted for (applied once / consumed). */
  readonly received: number;
  /** Change of the summed stock (subject) or of the summed consumed deltas (baseline). */
  readonly deltaSum: number;
  /** From the first send to the last delta received. */
  readonly elapsedMs: number;
  readonly histogram: Histogram;
  /** True when the receiver stopped making progress before it had every acknowledged delta. */
  readonly stalled: boolean;
}

export interface IngestEnv {
  readonly run: string;
  readonly mqttUrl: string;
  /** The private Mosquitto's pid, named in the CPU breakdown. */
  readonly mqttPid: number;
  /** The throw-away database's name, named in the CPU breakdown. */
  readonly database: string;
  /** Where the subject's consumer worker finds the database and Kafka. */
  readonly consumer: Omit<SensorConsumerRequest, "region" | "clientId">;
  readonly skus: readonly string[];
  readonly ratePerSec: number;
  readonly durationMs: number;
  readonly fleetClients: number;
  /** MQTT connections of the bridge (and of the raw forwarder). */
  readonly bridgeConnections: number;
  /** A receiver that gains nothing for this long is declared stalled. */
  readonly stallMs: number;
  readonly log: (message: string) => void;
}

const WORKER_REPORT_TIMEOUT_MS = 60_000;

/** Runs the fleet in a fresh worker and resolves with its report. */
export async function runFleet(env: IngestEnv, round: string): Promise<FleetReport> {
  const worker = new Worker(new URL("./_sensor_publisher_worker.ts", import.meta.url), { type: "module" });
  try {
    const request: FleetRequest = {
      url: env.mqttUrl,
      skus: env.skus,
      ratePerSec: env.ratePerSec,
      durationMs: env.durationMs,
      clients: env.fleetClients,
      round,
    };
    const reply = nextMessage<FleetReport | { error: string }>(worker, WORKER_REPORT_TIMEOUT_MS);
    worker.postMessage(request);
    const report = await reply;
    if ("error" in report) throw new Error(`Sensor fleet failed: ${report.error}`);
    return report;
  } finally {
    worker.terminate();
  }
}

/** Starts the subject's consumer and outbox relay on a worker thread; resolves once the consumer joined. */
async function startConsumerWorker(request: SensorConsumerRequest): Promise<{ close(): Promise<void> }> {
  const worker = new Worker(new URL("./_sensor_consumer_worker.ts", import.meta.url), { type: "module" });
  const answer = async (message: SensorConsumerRequest | "close", expected: string) => {
    const reply = nextMessage<SensorConsumerReply>(worker, WORKER_REPORT_TIMEOUT_MS);
    worker.postMessage(message);
    const got = await reply;
    if ("error" in got) throw new Error(`Sensor consumer worker failed: ${got.error}`);
    if (got.state !== expected) throw new Error(`Sensor consumer worker answered "${got.state}", not "${expected}"`);
  };
  try {
    await answer(request, "ready");
  } catch (error) {
    worker.terminate();
    throw error;
  }
  return {
    async close() {
      try {
        await answer("close", "closed");
      } finally {
        worker.terminate();
      }
    },
  };
}

/** Polls `count` until it reaches `target` or stops growing for `stallMs`; resolves with whether it stalled. */
async function waitFor(count: () => Promise<number> | number, target: number, stallMs: number): Promise<boolean> {
  let last = -1;
  let lastChangeMs = Date.now();
  for (;;) {
    const now = await count();
    if (now >= target) return false;
    if (now !== last) {
      last = now;
      lastChangeMs = Date.now();
    } else if (Date.now() - lastChangeMs > stallMs) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One subject round on `sql` (migrated, products stocked) and `eventLog` (prefixed to the run). */
export async function subjectRound(env: IngestEnv, sql: Sql, eventLog: EventLog, round: string): Promise<IngestRound> {
  const region = `${env.run}-${round}`.toLowerCase().replaceAll("_", "-");
  const [{ maxId }] = await sql.query<{ maxId: string }>`
    select coalesce(max(id), 0)::text as "maxId" from inventory_adjustment`;
  const [{ stockBefore }] = await sql.query<{ stockBefore: string }>`
    select sum(on_hand)::text as "stockBefore" from inventory_stock`;
  const buses: MqttBus[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  try {
    const consumer = await startConsumerWorker({ ...env.consumer, region, clientId: `${env.run}-${round}-consumer` });
    closers.push(() => consumer.close());
    for (let i = 0; i < env.bridgeConnections; i++) {
      const bus = await createMqttBus({
        url: env.mqttUrl,
        clientId: `bv-sensor-bridge-${region}-${i}`,
        cleanSession: false,
        // The session exists for this round only: the broker forgets it a minute after the bench is gone.
        sessionExpirySec: 60,
        onError: (error) => env.log(`bridge connection ${i}: ${error.message}`),
      });
      buses.push(bus);
      closers.push(() => bus.close());
    }
    const bridge = await startSensorBridge({ mqtt: buses, eventLog, region });
    closers.push(() => bridge.close());

    const cpu = await startSensorCpuMeter({
      labels: new Map([[env.mqttPid, "mosquitto (bench)"]]),
      database: env.database,
    });
    const fleet = await runFleet(env, round);
    // Polled every 100 ms: max(id) is one index probe, where counting the new rows would scan them all (that
    // scan was a tenth of a core at the end of a round). Ids never repeat but may skip, so it bounds the count
    // from above; the exact count runs only once the bound says every delta may be there.
    const applied = async () => {
      const [{ top }] = await sql.query<{ top: string }>`
        select coalesce(max(id), 0)::text as top from inventory_adjustment`;
      const bound = Number(top) - Number(maxId);
      if (bound < fleet.acked) return bound;
      const [{ n }] = await sql.query<{ n: number }>`
        select count(*)::int as n from inventory_adjustment where id > ${maxId}::int8 and source = 'mqtt'`;
      return n;
    };
    const stalled = await waitFor(applied, fleet.acked, env.stallMs);
    env.log(`subject: ${cpuPerDeltaLine(await cpu.read(), fleet.acked)}`);
    const rows = await sql.query<{ reason: string; at: number }>`
      select reason, (extract(epoch from created_at) * 1000)::float8 as at from inventory_adjustment
      where id > ${maxId}::int8 and source = 'mqtt'`;
    const histogram = createLatencyHistogram();
    let lastMs = fleet.firstSendMs;
    let firstMs = Infinity;
    const perSecond = new Map<number, number>();
    // created_at is now(), its transaction's start: one distinct value per applied batch.
    const transactions = new Map<number, number>();
    for (const row of rows) {
      transactions.set(row.at, (transactions.get(row.at) ?? 0) + 1);
      histogram.recordValue(Math.max(0, Math.round((row.at - Number(row.reason.slice(1))) * 1000)));
      lastMs = Math.max(lastMs, row.at);
      firstMs = Math.min(firstMs, row.at);
      const second = Math.floor((row.at - fleet.firstSendMs) / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    // Where the time went. The fleet's PUBACKs come from Mosquitto as soon as it holds a message (it queues
    // them for the bridge's session), so the last one says when the broker had everything, not the bridge
    // (the bridge's own PUBACKs, after the Kafka ack, go to the broker); a late start (a join) reads
    // differently from a slow steady rate.
    env.log(
      `subject: the broker acknowledged all ${fleet.acked} by ` +
        `${(fleet.lastAckMs - fleet.firstSendMs).toFixed(0)} ms, ` +
        `the consumer applied all by ${(lastMs - fleet.firstSendMs).toFixed(0)} ms; ` +
        `first delta applied ${(firstMs - fleet.firstSendMs).toFixed(0)} ms after the first send; ` +
        `${transactions.size} apply transactions (deltas each: ${quantilesOf([...transactions.values()])}); ` +
        `applied per second since then: ${
          [...perSecond.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]).join(", ")
        }`,
    );
    const [{ stockAfter }] = await sql.query<{ stockAfter: string }>`
      select sum(on_hand)::text as "stockAfter" from inventory_stock`;
    return {
      fleet,
      received: rows.length,
      deltaSum: Number(stockAfter) - Number(stockBefore),
      elapsedMs: lastMs - fleet.firstSendMs,
      histogram,
      stalled,
    };
  } finally {
    for (const close of closers.reverse()) await close().catch((error) => env.log(`close failed: ${error}`));
    // Ends the persistent sessions, so the broker stops queueing for them during the next rounds.
    await Promise.allSettled(buses.map((_, i) =>
      mqtt.connectAsync(env.mqttUrl, {
        clientId: `bv-sensor-bridge-${region}-${i}`,
        clean: true,
        protocolVersion: 5,
        connectTimeout: 5_000,
      }).then((client) => client.endAsync())
    ));
  }
}

/** "p10 a / p50 b / p90 c / max d" of `values`. */
function quantilesOf(values: number[]): string {
  if (values.length === 0) return "none";
  values.sort((a, b) => a - b);
  const at = (q: number) => values[Math.min(values.length - 1, Math.floor(q * values.length))];
  return `p10 ${at(0.1)} / p50 ${at(0.5)} / p90 ${at(0.9)} / max ${values[values.length - 1]}`;
}

/** The raw forwarder's Kafka side, made once per scenario run. */
export interface RawKafka {
  readonly producer: Producer;
  readonly consumer: (groupId: string) => Consumer;
  readonly topic: string;
}

/** One baseline round: raw mqtt.js → kafkajs forwarder → raw kafkajs consumer. */
export async function baselineRound(env: IngestEnv, kafka: RawKafka, round: string): Promise<IngestRound> {
  const histogram = createLatencyHistogram();
  let received = 0, deltaSum = 0, lastMs = 0;
  const consumer = kafka.consumer(`${env.run}.raw-sensor-${round}`);
  const clients: mqtt.MqttClient[] = [];
  try {
    const ready = joinedAndFetched(consumer);
    await consumer.connect();
    await consumer.subscribe({ topics: [kafka.topic], fromBeginning: false });
    await consumer.run({
      eachBatch: ({ batch }) => {
        const atMs = Date.now();
        for (const message of batch.messages) {
          const { delta, reason } = JSON.parse(message.value!.toString()) as { delta: number; reason: string };
          histogram.recordValue(Math.max(0, Math.round((atMs - Number(reason.slice(1))) * 1000)));
          received++;
          deltaSum += delta;
        }
        lastMs = atMs;
        return Promise.resolve();
      },
    });
    await withTimeout(ready, 30_000, "The raw consumer did not join");

    const waiting: { topic: string; payload: Buffer; ack: (error?: Error) => void }[] = [];
    let flushing = false;
    const flush = async () => {
      if (flushing) return;
      flushing = true;
      while (waiting.length > 0) {
        const batch = waiting.splice(0, 200);
        try {
          await kafka.producer.send({
            topic: kafka.topic,
            acks: -1,
            messages: batch.map((m) => ({ key: m.topic.split("/")[2], value: m.payload })),
          });
          for (const m of batch) m.ack();
        } catch (error) {
          for (const m of batch) m.ack(error as Error);
        }
      }
      flushing = false;
    };
    for (let i = 0; i < env.bridgeConnections; i++) {
      const client = await mqtt.connectAsync(env.mqttUrl, {
        clientId: `bvbench-raw-forwarder-${env.run}-${round}-${i}`,
        clean: true,
        protocolVersion: 5,
        connectTimeout: 5_000,
      });
      // PUBACK only after Kafka acknowledged, the same promise the bridge makes.
      client.handleMessage = (packet, callback) => {
        waiting.push({ topic: packet.topic, payload: packet.payload as Buffer, ack: (error) => callback(error) });
        void flush();
      };
      await client.subscribeAsync(`$share/raw-${round}/iot/inventory/+/delta`, { qos: 1 });
      clients.push(client);
    }

    const cpu = await startSensorCpuMeter({ labels: new Map([[env.mqttPid, "mosquitto (bench)"]]) });
    const fleet = await runFleet(env, round);
    const stalled = await waitFor(() => received, fleet.acked, env.stallMs);
    env.log(`baseline: ${cpuPerDeltaLine(await cpu.read(), fleet.acked)}`);
    return { fleet, received, deltaSum, elapsedMs: lastMs - fleet.firstSendMs, histogram, stalled };
  } finally {
    await Promise.allSettled(clients.map((client) => client.endAsync()));
    await consumer.disconnect().catch(() => {});
  }
}
