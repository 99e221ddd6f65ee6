/**
 * The event-log contract against the real east cluster (`deno run -A scripts/infra_up.ts east` first).
 * Consumer timings are shortened so a group join, leave or abandoned record costs well under a second.
 */
import { Kafka, logLevel } from "kafkajs";
import { dlqTopicOf } from "../../ports/event_log.ts";
import { eventLogContract } from "../../ports/contract/event_log_contract.ts";
import { realInfra } from "../../testing/real_infra.ts";
import { uniqueName } from "../../testing/unique.ts";
import { createKafkaEventLog } from "./mod.ts";

async function deleteTopics(topics: readonly string[]): Promise<void> {
  const admin = new Kafka({
    clientId: "bv-test-cleanup",
    brokers: [...realInfra.kafkaBrokers],
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 2 },
    logLevel: logLevel.ERROR,
  }).admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const mine = topics.filter((topic) => existing.has(topic));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine, timeout: 10_000 });
  } finally {
    await admin.disconnect();
  }
}

eventLogContract("kafka", () => {
  const topics: string[] = [];
  const log = createKafkaEventLog({
    brokers: realInfra.kafkaBrokers,
    clientId: uniqueName("bv_test"),
    connectionTimeoutMs: 3_000,
    requestTimeoutMs: 10_000,
    logLevel: "error",
    // The contract makes handlers fail on purpose; only errors are worth printing.
    log: (entry) => entry.level === "error" && console.error(JSON.stringify(entry)),
    consumer: {
      // The broker allows sessions down to 1 s (group.min.session.timeout.ms in scripts/kafka/_config.ts).
      sessionTimeoutMs: 6_000,
      rebalanceTimeoutMs: 6_000,
      heartbeatIntervalMs: 200,
      maxWaitTimeMs: 100,
      closeTimeoutMs: 1_000,
    },
    handlerRetry: { initialDelayMs: 50, maxDelayMs: 200 },
  });
  return Promise.resolve({
    log,
    newTopic: (name: string) => {
      const topic = uniqueName(`bv_test_${name}`);
      topics.push(topic, dlqTopicOf(topic));
      return topic;
    },
    cleanup: async () => {
      await log.close();
      await deleteTopics(topics);
    },
  });
});
