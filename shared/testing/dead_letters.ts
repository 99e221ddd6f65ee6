/**
 * @module
 * Test helper: a reader of a topic's dead-letter topic (`<topic>.dlq`) from its start, joined before it
 * resolves, so a test can assert what was (or was not) dead-lettered.
 */
import { dlqTopicOf, type EventLog, type IncomingRecord } from "../ports/event_log.ts";
import { uniqueName } from "./unique.ts";

export async function readDeadLetters(
  eventLog: EventLog,
  topic: string,
): Promise<{ readonly records: IncomingRecord[]; close(): Promise<void> }> {
  const records: IncomingRecord[] = [];
  const subscription = await eventLog.subscribe({
    groupId: uniqueName("dlq-reader"),
    topics: [dlqTopicOf(topic)],
    from: "earliest",
    handler: (record) => Promise.resolve(void records.push(record)),
  });
  await subscription.ready;
  return { records, close: () => subscription.close() };
}
