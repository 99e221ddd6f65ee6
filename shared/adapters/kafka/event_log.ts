/**
 * @module
 * The event-log port on Apache Kafka through kafkajs: an idempotent producer with acks=all, topics created
 * on purpose, and consumer-group members that commit only after their handler succeeds (see `_member.ts`).
 */
import { type Admin, CompressionTypes, Kafka, Partitioners, type Producer } from "kafkajs";
// Before any client exists: stops kafkajs's 1 ms idle timer loop per broker connection.
import "./_request_queue_fix.ts";
import type { EventLog, OutgoingRecord, Subscription, TopicSpec } from "../../ports/event_log.ts";
import {
  kafkajsLevelOf,
  type KafkaLogEntry,
  type KafkaLogLevelName,
  type KafkaLogSink,
  logCreatorFor,
  stderrJsonSink,
} from "./_logging.ts";
import { type HandlerRetryPolicy, isTopicNotReadyYet, type KafkaConsumerTimings, startMember } from "./_member.ts";
import { startBatchMember } from "./_batch_member.ts";

export type { HandlerRetryPolicy, KafkaConsumerTimings, KafkaLogEntry, KafkaLogLevelName };

/** How to reach the cluster and how patient to be with it. */
export interface KafkaEventLogOptions {
  /** Bootstrap servers, `host:port`. */
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** TCP connect timeout per broker. @default 3_000 */
  readonly connectionTimeoutMs?: number;
  /** Timeout of each request (produce, commit, admin). @default 10_000 */
  readonly requestTimeoutMs?: number;
  /** kafkajs's own log level; INFO is a line per join, connect and commit, too noisy for services. @default "warn" */
  readonly logLevel?: KafkaLogLevelName;
  /** Where log entries go. @default JSON lines on stderr */
  readonly log?: (entry: KafkaLogEntry) => void;
  /** Consumer-group timing; tests shorten it so joins and leaves take well under a second. */
  readonly consumer?: KafkaConsumerTimings;
  /** Backoff between deliveries of a record whose handler threw. @default { initialDelayMs: 200, maxDelayMs: 5_000 } */
  readonly handlerRetry?: HandlerRetryPolicy;
  /** Replicas of topics made by `ensureTopics`; the local clusters have one broker. @default 1 */
  readonly replicationFactor?: number;
}

const TOPIC_PARTITIONS_DEFAULT = 3;
/** Attempts of `ensureTopics` while new partitions are not hosted yet (backoff 200 ms doubling: ≤ 6 s). */
const ENSURE_TOPICS_ATTEMPTS_MAX = 5;

/** Creates an event log on a Kafka cluster; nothing connects until the first call that needs it. */
export function createKafkaEventLog(options: KafkaEventLogOptions): EventLog {
  if (options.brokers.length === 0) throw new TypeError("createKafkaEventLog() needs at least one broker");
  if (options.clientId === "") throw new TypeError('createKafkaEventLog() needs a non-empty "clientId"');
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const sink: KafkaLogSink = options.log ?? stderrJsonSink;
  const replicationFactor = options.replicationFactor ?? 1;
  const kafka = new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: options.connectionTimeoutMs ?? 3_000,
    requestTimeout: requestTimeoutMs,
    // Admin and metadata calls: a few quick retries ride out a broker restart; callers see the error after ~10 s.
    retry: { initialRetryTime: 100, maxRetryTime: 2_000, retries: 5 },
    logLevel: kafkajsLevelOf(options.logLevel ?? "warn"),
    logCreator: logCreatorFor(sink, options.logLevel ?? "warn"),
  });
  const timings: Required<KafkaConsumerTimings> = {
    sessionTimeoutMs: options.consumer?.sessionTimeoutMs ?? 30_000,
    rebalanceTimeoutMs: options.consumer?.rebalanceTimeoutMs ?? 60_000,
    heartbeatIntervalMs: options.consumer?.heartbeatIntervalMs ?? 3_000,
    maxWaitTimeMs: options.consumer?.maxWaitTimeMs ?? 500,
    closeTimeoutMs: options.consumer?.closeTimeoutMs ?? 10_000,
    commitIntervalMs: options.consumer?.commitIntervalMs ?? 500,
  };
  const handlerRetry = options.handlerRetry ?? { initialDelayMs: 200, maxDelayMs: 5_000 };

  let closed = false;
  const subscriptions = new Set<Subscription>();
  const producer = lazily(async (): Promise<Producer> => {
    const made = kafka.producer({
      // Idempotence makes broker-side retries safe: no duplicates, no reordering within a partition.
      idempotent: true,
      maxInFlightRequests: 1,
      // Explicit, so kafkajs does not warn; murmur2 of the key, as the Java client does.
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: true,
      retry: { initialRetryTime: 100, maxRetryTime: 2_000, retries: 5 },
    });
    await made.connect();
    return made;
  });
  const admin = lazily(async (): Promise<Admin> => {
    const made = kafka.admin({ retry: { initialRetryTime: 100, maxRetryTime: 2_000, retries: 5 } });
    await made.connect();
    return made;
  });
  const ensuredDeadLetterTopics = new Map<string, Promise<void>>();

  const memberContext = {
    kafka,
    admin: () => admin.get(),
    timings,
    retry: handlerRetry,
    requestTimeoutMs,
    log: sink,
    publishDeadLetter,
  };

  /** Keeps `member` for `close()` until it closes itself. */
  function tracked(member: Subscription): Subscription {
    const subscription: Subscription = {
      ready: member.ready,
      close: async () => {
        subscriptions.delete(subscription);
        await member.close();
      },
    };
    subscriptions.add(subscription);
    return subscription;
  }

  function assertOpen(action: string): void {
    if (closed) throw new Error(`Cannot ${action}: the Kafka event log is closed`);
  }

  async function ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    assertOpen("ensure topics");
    if (topics.length === 0) return;
    for (const { name, partitions } of topics) {
      if (name === "") throw new TypeError("Topic names must not be empty");
      if (partitions !== undefined && (!Number.isInteger(partitions) || partitions < 1)) {
        throw new RangeError(`Topic "${name}" needs a positive whole number of partitions, got ${partitions}`);
      }
    }
    for (let attempt = 1;; attempt++) {
      try {
        // createTopics skips topics that already exist (it resolves false when all of them did).
        await (await admin.get()).createTopics({
          topics: topics.map(({ name, partitions }) => ({
            topic: name,
            numPartitions: partitions ?? TOPIC_PARTITIONS_DEFAULT,
            replicationFactor,
          })),
          waitForLeaders: true,
          timeout: requestTimeoutMs,
        });
        return;
      } catch (error) {
        // Another process may create the same topic between kafkajs's metadata check and its request.
        if (isTopicAlreadyExists(error)) return;
        // Right after creation the broker may not host the new partitions yet; kafkajs's wait for leaders
        // retries LEADER_NOT_AVAILABLE only, so UNKNOWN_TOPIC_OR_PARTITION is retried here (bounded).
        if (!isTopicNotReadyYet(error) || attempt >= ENSURE_TOPICS_ATTEMPTS_MAX) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
  }

  async function publish(topic: string, records: readonly OutgoingRecord[]): Promise<void> {
    assertOpen(`publish to "${topic}"`);
    if (records.length === 0) return;
    await (await producer.get()).send({
      topic,
      // -1 is acks=all: every in-sync replica has the records before the promise resolves.
      acks: -1,
      timeout: requestTimeoutMs,
      compression: CompressionTypes.None,
      messages: records.map((record) => ({ key: record.key, value: record.value, headers: { ...record.headers } })),
    });
  }

  async function publishDeadLetter(topic: string, record: OutgoingRecord): Promise<void> {
    // The consumer side disables topic auto-creation, and a dead letter must not depend on a broker default.
    let ensured = ensuredDeadLetterTopics.get(topic);
    if (ensured === undefined) {
      ensured = ensureTopics([{ name: topic }]);
      ensuredDeadLetterTopics.set(topic, ensured);
      ensured.catch(() => ensuredDeadLetterTopics.delete(topic));
    }
    await ensured;
    await publish(topic, [record]);
  }

  return {
    ensureTopics,
    publish,
    async subscribe(subscribeOptions) {
      assertOpen(`subscribe group "${subscribeOptions.groupId}"`);
      return tracked(await startMember(memberContext, subscribeOptions));
    },
    async subscribeBatches(batchOptions) {
      assertOpen(`subscribe group "${batchOptions.groupId}"`);
      return tracked(await startBatchMember(memberContext, batchOptions));
    },
    async ping(timeoutMs) {
      assertOpen("ping");
      await withTimeout(
        (async () => {
          const cluster = await (await admin.get()).describeCluster();
          if (cluster.brokers.length === 0) throw new Error("Kafka answered with no brokers");
        })(),
        timeoutMs,
        `Kafka did not answer within ${timeoutMs} ms (brokers: ${options.brokers.join(",")})`,
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...subscriptions].map((subscription) => subscription.close()));
      await Promise.allSettled([producer.dispose((p) => p.disconnect()), admin.dispose((a) => a.disconnect())]);
    },
  };
}

/** A connection made on first use; a failed attempt is forgotten so the next call tries again. */
function lazily<T>(make: () => Promise<T>) {
  let made: Promise<T> | undefined;
  return {
    get(): Promise<T> {
      made ??= make().catch((error) => {
        made = undefined;
        throw error;
      });
      return made;
    },
    async dispose(close: (value: T) => Promise<void>): Promise<void> {
      if (made === undefined) return;
      const value = await made.catch(() => undefined);
      made = undefined;
      if (value !== undefined) await close(value);
    },
  };
}

function isTopicAlreadyExists(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { type, errors } = error as { type?: string; errors?: unknown[] };
  if (type === "TOPIC_ALREADY_EXISTS") return true;
  return Array.isArray(errors) && errors.length > 0 && errors.every(isTopicAlreadyExists);
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(message)), timeoutMs));
  // The losing promise must not surface later as an unhandled rejection.
  promise.catch(() => {});
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
