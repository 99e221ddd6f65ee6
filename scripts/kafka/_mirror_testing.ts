/**
 * @module
 * Helpers for the MirrorMaker tests (`mirror_maker_test.ts`, `mirror_maker_restart_test.ts`): an event log
 * and an admin per region, a collecting consumer, topic existence and record counts read from offsets.
 * Private to `scripts/kafka/`.
 */
import { type Admin, Kafka, logLevel } from "kafkajs";
import { createKafkaEventLog } from "../../shared/adapters/kafka/mod.ts";
import type { EventLog, IncomingRecord, Subscription } from "../../shared/ports/mod.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { KAFKA_REGIONS, type KafkaRegion } from "./_config.ts";
import { kafkaBrokersOf } from "./mod.ts";

const REQUEST_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 100;

/** An event log and an admin client on one region's cluster. */
export interface RegionClients {
  readonly region: KafkaRegion;
  readonly log: EventLog;
  readonly admin: Admin;
}

/** Connects an event log (short consumer timings, as tests use) and an admin to each region. */
export async function connectRegions(clientId: string): Promise<Record<KafkaRegion, RegionClients>> {
  const entries = await Promise.all(KAFKA_REGIONS.map(async (region) => {
    const brokers = kafkaBrokersOf(region);
    const log = createKafkaEventLog({
      brokers,
      clientId: `${clientId}-${region}`,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      consumer: {
        sessionTimeoutMs: 10_000,
        rebalanceTimeoutMs: 10_000,
        heartbeatIntervalMs: 1_000,
        maxWaitTimeMs: 100,
        closeTimeoutMs: 2_000,
      },
    });
    const admin = new Kafka({
      clientId: `${clientId}-${region}-admin`,
      brokers,
      connectionTimeout: 3_000,
      requestTimeout: REQUEST_TIMEOUT_MS,
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    return [region, { region, log, admin }] as const;
  }));
  return Object.fromEntries(entries) as Record<KafkaRegion, RegionClients>;
}

/** Closes what `connectRegions` opened, ignoring failures (cleanup must not hide the test's own error). */
export async function closeRegions(regions: Record<KafkaRegion, RegionClients>): Promise<void> {
  await Promise.allSettled(Object.values(regions).flatMap(({ log, admin }) => [log.close(), admin.disconnect()]));
}

/** Waits until `topic` exists on the cluster; resolves with the milliseconds waited. */
export async function waitForTopic(admin: Admin, topic: string, timeoutMs: number): Promise<number> {
  const startedMs = Date.now();
  while (!(await admin.listTopics()).includes(topic)) {
    if (Date.now() - startedMs > timeoutMs) {
      throw new Error(`Topic "${topic}" did not appear within ${timeoutMs / 1000} s; see .data/logs/kafka-mirror.log`);
    }
    await sleep(POLL_INTERVAL_MS);
  }
  return Date.now() - startedMs;
}

/** Records in `topic` (sum of its partitions' high watermarks; the test topics are never truncated). */
export async function recordCount(admin: Admin, topic: string): Promise<number> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets.reduce((sum, { high, low }) => sum + Number(high) - Number(low), 0);
}

/** The partition holding records of `topic` when exactly one partition has any (one record was sent). */
export async function partitionsWithRecords(admin: Admin, topic: string): Promise<number[]> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets.filter(({ high, low }) => Number(high) > Number(low)).map(({ partition }) => partition).sort();
}

/** A consumer group member that keeps every record it is handed. */
export interface Collector {
  readonly records: IncomingRecord[];
  /** Waits until `predicate` holds; the timeout error names `what`. */
  waitFor(what: string, predicate: (records: readonly IncomingRecord[]) => boolean, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Subscribes a fresh group to `topic` from its first record and waits until the member is ready. */
export async function collect(log: EventLog, topic: string): Promise<Collector> {
  const records: IncomingRecord[] = [];
  const subscription: Subscription = await log.subscribe({
    groupId: uniqueName("mm2-collector"),
    topics: [topic],
    from: "earliest",
    handler: (record) => Promise.resolve(void records.push(record)),
  });
  await subscription.ready;
  return {
    records,
    async waitFor(what, predicate, timeoutMs) {
      const startedMs = Date.now();
      while (!predicate(records)) {
        if (Date.now() - startedMs > timeoutMs) {
          throw new Error(`${what}: not seen within ${timeoutMs / 1000} s (${records.length} records so far)`);
        }
        await sleep(10);
      }
    },
    close: () => subscription.close(),
  };
}

/** Deletes topics that exist, ignoring failures. */
export async function deleteTopics(admin: Admin, topics: readonly string[]): Promise<void> {
  const existing = new Set(await admin.listTopics().catch(() => [] as string[]));
  const present = topics.filter((topic) => existing.has(topic));
  if (present.length > 0) await admin.deleteTopics({ topics: present, timeout: REQUEST_TIMEOUT_MS }).catch(() => {});
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
