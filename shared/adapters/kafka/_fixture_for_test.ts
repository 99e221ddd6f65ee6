/**
 * @module
 * What the Kafka adapter's tests share: an event log on the real east cluster with test timings, and
 * cleanup of the topics a test made.
 */
import { type Admin, Kafka, logLevel } from "kafkajs";
import { realInfra } from "../../testing/real_infra.ts";
import { TEST_CONSUMER_TIMINGS } from "../../testing/kafka_test_timings.ts";
import { uniqueName } from "../../testing/unique.ts";
import type { EventLog } from "../../ports/event_log.ts";
import { createKafkaEventLog, type HandlerRetryPolicy } from "./mod.ts";

/** An event log on the east cluster; handlers fail on purpose in these tests, so only errors are printed. */
export function testKafkaLog(handlerRetry: HandlerRetryPolicy): EventLog {
  return createKafkaEventLog({
    brokers: realInfra.kafkaBrokers,
    clientId: uniqueName("bv_test"),
    connectionTimeoutMs: 3_000,
    requestTimeoutMs: 10_000,
    logLevel: "error",
    log: (entry) => entry.level === "error" && console.error(JSON.stringify(entry)),
    consumer: TEST_CONSUMER_TIMINGS,
    handlerRetry,
  });
}

/** Runs `use` with a connected kafkajs admin client of the test's own on the east cluster, disconnected after. */
export async function withTestAdmin<T>(clientId: string, use: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = new Kafka({
    clientId,
    brokers: [...realInfra.kafkaBrokers],
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 2 },
    logLevel: logLevel.ERROR,
  }).admin();
  await admin.connect();
  try {
    return await use(admin);
  } finally {
    await admin.disconnect();
  }
}

/** Deletes those of `topics` that exist. */
export async function deleteTopics(topics: readonly string[]): Promise<void> {
  await withTestAdmin("bv-test-cleanup", async (admin) => {
    const existing = new Set(await admin.listTopics());
    const mine = topics.filter((topic) => existing.has(topic));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine, timeout: 10_000 });
  });
}
