/**
 * @module
 * Namespaces an event log: every topic and consumer group gets `prefix`, and consumers see the logical
 * topic names again. Several platform instances (a developer's and a test run's) can then share one Kafka
 * cluster without reading each other's history or splitting each other's consumer groups — the same
 * isolation a database name, a vhost and a key prefix give the other services.
 */
import type { BatchSubscribeOptions, EventLog } from "./event_log.ts";

export function prefixedEventLog(log: EventLog, prefix: string): EventLog {
  if (prefix === "") return log;
  const physical = (topic: string) => `${prefix}${topic}`;
  const logical = (topic: string) => (topic.startsWith(prefix) ? topic.slice(prefix.length) : topic);
  return {
    ensureTopics: (topics) => log.ensureTopics(topics.map((t) => ({ ...t, name: physical(t.name) }))),
    publish: (topic, records) => log.publish(physical(topic), records),
    subscribe: (options) =>
      log.subscribe({
        ...options,
        groupId: physical(options.groupId),
        topics: options.topics.map(physical),
        handler: (record) => options.handler({ ...record, topic: logical(record.topic) }),
      }),
    // Offered only when the inner log has it, so callers can still tell whether batches are supported.
    ...(log.subscribeBatches === undefined ? {} : {
      subscribeBatches: (options: BatchSubscribeOptions) =>
        log.subscribeBatches!({
          ...options,
          groupId: physical(options.groupId),
          topics: options.topics.map(physical),
          handler: (records) => options.handler(records.map((record) => ({ ...record, topic: logical(record.topic) }))),
        }),
    }),
    ping: (timeoutMs) => log.ping(timeoutMs),
    close: () => log.close(),
  };
}
