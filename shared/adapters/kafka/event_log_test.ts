/**
 * The event-log contract against the real east cluster (`deno run -A scripts/infra_up.ts east` first).
 * Consumer timings are shortened so a group join, leave or abandoned record costs well under a second.
 */
import { dlqTopicOf } from "../../ports/event_log.ts";
import { eventLogContract } from "../../ports/contract/event_log_contract.ts";
import { uniqueName } from "../../testing/unique.ts";
import { deleteTopics, testKafkaLog } from "./_fixture_for_test.ts";

eventLogContract("kafka", () => {
  const topics: string[] = [];
  const log = testKafkaLog({ initialDelayMs: 50, maxDelayMs: 200 });
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
