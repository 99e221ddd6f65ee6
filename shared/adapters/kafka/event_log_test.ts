/**
 * The event-log contract against the real east cluster (`deno run -A scripts/infra_up.ts east` first).
 * Consumer timings are shortened so a group join, leave or abandoned record costs well under a second.
 */
import assert from "node:assert/strict";
import { dlqTopicOf } from "../../ports/event_log.ts";
import { eventLogContract } from "../../ports/contract/event_log_contract.ts";
import { uniqueName } from "../../testing/unique.ts";
import { deleteTopics, testKafkaLog } from "./_fixture_for_test.ts";

eventLogContract("kafka", () => {
  const topics: string[] = [];
  const log = testKafkaLog({ initialDelayMs: 50, maxDelayMs: 200 });
  let current = log;
  return Promise.resolve({
    log,
    newTopic: (name: string) => {
      const topic = uniqueName(`bv_test_${name}`);
      topics.push(topic, dlqTopicOf(topic));
      return topic;
    },
    // A new client on the same brokers: what a restarted process has (the group's state lives in Kafka).
    reopen: async () => {
      await current.close();
      current = testKafkaLog({ initialDelayMs: 50, maxDelayMs: 200 });
      return current;
    },
    cleanup: async () => {
      await log.close();
      await current.close();
      await deleteTopics(topics);
    },
  });
});

Deno.test({
  name: "kafka subscribe waits for a topic another component is still creating, then delivers its records",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const topic = uniqueName("bv_test_late_topic");
    const log = testKafkaLog({ initialDelayMs: 50, maxDelayMs: 200 });
    try {
      const received: string[] = [];
      // The topic does not exist yet and topics are never auto-created: subscribe used to fail at once
      // ("This server does not host this topic-partition"), failing the whole service's start.
      const subscribing = log.subscribe({
        groupId: uniqueName("bv_test_late_group"),
        topics: [topic],
        from: "earliest",
        handler: (record) => {
          received.push(record.value);
          return Promise.resolve();
        },
      });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await log.ensureTopics([{ name: topic, partitions: 1 }]);
      const subscription = await subscribing;
      await subscription.ready;
      await log.publish(topic, [{ key: "k", value: "late", headers: {} }]);
      const deadline = Date.now() + 15_000;
      while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(received, ["late"]);
      await subscription.close();
    } finally {
      await log.close();
      await deleteTopics([topic]);
    }
  },
});
