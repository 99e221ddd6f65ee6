/**
 * @module
 * Namespaces an event log: every topic and consumer group gets `prefix`, and consumers see the logical
 * topic names again. Several platform instances (a developer's and a test run's) can then share one Kafka
 * cluster without reading each other's history or splitting each other's consumer groups — the same
 * isolation a database name, a vhost and a key prefix give the other services.
 *
 * A MirrorMaker copy of another region's topic is named logically with `remoteTopic(region, topic)`
 * (`shared/replication/remote_topic.ts`) and maps to `<region>.<prefix><topic>`, the name MirrorMaker 2
 * gives it; its records come back under that logical name. That mapping applies with an empty prefix too.
 */
import { physicalTopicOf } from "../replication/remote_topic.ts";
import type { BatchSubscribeOptions, EventLog, IncomingRecord, SubscribeOptions } from "./event_log.ts";

export function prefixedEventLog(log: EventLog, prefix: string): EventLog {
  const physical = (topic: string) => physicalTopicOf(topic, prefix);
  /**
   * Maps a record's physical topic back to the logical name the subscription asked for; undefined when every name
   * is its own physical name (no prefix, no remote topic), so records pass through without a copy each.
   */
  const logicalNamesOf = (options: Pick<SubscribeOptions, "topics">) => {
    const byPhysical = new Map(options.topics.map((topic) => [physical(topic), topic]));
    if (prefix === "" && [...byPhysical].every(([physicalName, topic]) => physicalName === topic)) return undefined;
    return (record: IncomingRecord): IncomingRecord => {
      const topic = byPhysical.get(record.topic) ??
        (record.topic.startsWith(prefix) ? record.topic.slice(prefix.length) : record.topic);
      return { ...record, topic };
    };
  };
  const renamed = <T extends Pick<SubscribeOptions, "groupId" | "topics">>(options: T): T => ({
    ...options,
    groupId: `${prefix}${options.groupId}`,
    topics: options.topics.map(physical),
  });
  return {
    ensureTopics: (topics) => log.ensureTopics(topics.map((t) => ({ ...t, name: physical(t.name) }))),
    publish: (topic, records) => log.publish(physical(topic), records),
    subscribe: (options) => {
      const logical = logicalNamesOf(options);
      const handler = logical ? (record: IncomingRecord) => options.handler(logical(record)) : options.handler;
      return log.subscribe({ ...renamed(options), handler });
    },
    // Offered only when the inner log has it, so callers can still tell whether batches are supported.
    ...(log.subscribeBatches === undefined ? {} : {
      subscribeBatches: (options: BatchSubscribeOptions) => {
        const logical = logicalNamesOf(options);
        return log.subscribeBatches!({
          ...renamed(options),
          handler: logical ? (records) => options.handler(records.map(logical)) : options.handler,
        });
      },
    }),
    ping: (timeoutMs) => log.ping(timeoutMs),
    close: () => log.close(),
  };
}
