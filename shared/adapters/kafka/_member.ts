/**
 * @module
 * One consumer-group member on kafkajs: commit after the handler succeeds, bounded retries, dead-lettering
 * and a close that cannot hang on a stuck handler. Private to the Kafka adapter.
 */
import type { Admin, Consumer, ConsumerRunConfig, EachMessagePayload, IHeaders, Kafka, KafkaMessage } from "kafkajs";
import {
  batchWindowOf,
  DeliveryAttempts,
  dlqRecordOf,
  dlqTopicOf,
  type IncomingRecord,
  type OutgoingRecord,
  type RecordHeaders,
  type SubscribeOptions,
  type Subscription,
} from "../../ports/event_log.ts";
import type { KafkaLogSink } from "./_logging.ts";
import { createOffsetCommitter, type OffsetCommitter } from "./_commits.ts";
import { type StartPositions, startPositionsFor } from "./_start_positions.ts";
import { isTopicNotReadyYet, whenTopicServed } from "./_topic_served.ts";

/** Consumer-group timing; kafkajs's defaults are written out here so they are visible. */
export interface KafkaConsumerTimings {
  /** The broker drops a member it has not heard from for this long. @default 30_000 */
  readonly sessionTimeoutMs?: number;
  /** How long the coordinator waits for members to rejoin during a rebalance. @default 60_000 */
  readonly rebalanceTimeoutMs?: number;
  /** @default 3_000 (kafkajs heartbeats between fetches and between handler retries) */
  readonly heartbeatIntervalMs?: number;
  /**
   * Longest an empty fetch waits on the broker (a record ends the wait at once, so this is not latency);
   * also how long `close()` may wait for the fetch loop, which is why it stays short: a deployable closes
   * its members one after another within its shutdown grace period. @default 500
   */
  readonly maxWaitTimeMs?: number;
  /** How long `close()` waits for the record in flight before abandoning it uncommitted. @default 10_000 */
  readonly closeTimeoutMs?: number;
  /**
   * Offsets of handled records are committed together at most this often (and on close and rebalance);
   * 0 commits after every record (or batch). A member that dies loses at most this much of commits, so its
   * successor re-delivers that many records. @default 500
   */
  readonly commitIntervalMs?: number;
}

/** Backoff before redelivering a record whose handler threw: doubles from `initialDelayMs` up to `maxDelayMs`. */
export interface HandlerRetryPolicy {
  /** @default 200 */
  readonly initialDelayMs: number;
  /** @default 5_000 */
  readonly maxDelayMs: number;
}

export const HANDLER_MAX_ATTEMPTS_DEFAULT = 5;
/** A windowed fetch is answered early once this much is ready (a batch worth handing over at once). */
export const BATCH_WINDOW_MIN_BYTES = 1024 * 1024;

export interface MemberContext {
  readonly kafka: Kafka;
  /** The log's admin client (connected on first use): offsets of groups and topics. */
  readonly admin: () => Promise<Admin>;
  readonly timings: Required<KafkaConsumerTimings>;
  readonly retry: HandlerRetryPolicy;
  readonly requestTimeoutMs: number;
  readonly log: KafkaLogSink;
  readonly publishDeadLetter: (topic: string, record: OutgoingRecord) => Promise<void>;
}

/** Joins `options.groupId` and starts consuming; the returned subscription's `ready` tracks the join. */
export async function startMember(context: MemberContext, options: SubscribeOptions): Promise<Subscription> {
  const maxAttempts = maxAttemptsOf(options);
  const consumer = consumerOf(context, options);
  const commits = committerOf(context, consumer, options.groupId);
  const starts = startPositionsFor(context, consumer, commits, options);
  const ready = readyOf(consumer, starts);
  const state = new MemberState(context, options, consumer, commits, maxAttempts, ready.fail);
  await runConsumer(consumer, options, ready, {
    autoCommit: false,
    // One partition at a time keeps per-key order obvious; more parallelism means more members.
    partitionsConsumedConcurrently: 1,
    eachMessage: (payload) => state.onMessage(payload),
  }, starts);
  return { ready: ready.promise, close: () => state.close() };
}

/** Checks what every member needs of its options; returns the handler's attempt limit. */
export function maxAttemptsOf(options: Omit<SubscribeOptions, "handler">): number {
  batchWindowOf(options);
  const maxAttempts = options.maxAttempts ?? HANDLER_MAX_ATTEMPTS_DEFAULT;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(`maxAttempts must be a positive integer, got ${maxAttempts}`);
  }
  if (options.topics.length === 0) throw new TypeError(`Subscription of group "${options.groupId}" has no topics`);
  return maxAttempts;
}

/**
 * The group's consumer, with the fetch bounds and retries both member kinds use. With a batch window the
 * broker holds each fetch until the window has passed or {@link BATCH_WINDOW_MIN_BYTES} are ready, so a
 * trickle of records costs one fetch (and one handler call, for a batch member) per window instead of one
 * per record, on both sides of the connection.
 */
export function consumerOf(context: MemberContext, options: Omit<SubscribeOptions, "handler">): Consumer {
  const { timings } = context;
  const windowMs = batchWindowOf(options);
  return context.kafka.consumer({
    groupId: options.groupId,
    sessionTimeout: timings.sessionTimeoutMs,
    rebalanceTimeout: timings.rebalanceTimeoutMs,
    heartbeatInterval: timings.heartbeatIntervalMs,
    maxWaitTimeInMs: windowMs > 0 ? windowMs : timings.maxWaitTimeMs,
    minBytes: windowMs > 0 ? BATCH_WINDOW_MIN_BYTES : 1,
    maxBytes: 10 * 1024 * 1024,
    maxBytesPerPartition: 1024 * 1024,
    // Topics are created on purpose (ensureTopics); a typo must not create one.
    allowAutoTopicCreation: false,
    readUncommitted: false,
    retry: { initialRetryTime: 100, maxRetryTime: 5_000, retries: 8 },
  });
}

/**
 * The member's offset committer ({@link createOffsetCommitter}); it flushes when the group starts to
 * rebalance, so the partitions' next owner (often this member again) does not redo what was handled.
 */
export function committerOf(context: MemberContext, consumer: Consumer, groupId: string): OffsetCommitter {
  const commits = createOffsetCommitter(consumer, groupId, context.timings.commitIntervalMs, context.log);
  consumer.on(consumer.events.REBALANCING, () => void commits.flush());
  return commits;
}

export { isTopicNotReadyYet };

/**
 * Connects, subscribes and runs `consumer`; a failure fails `ready`, disconnects and is rethrown. A "latest"
 * member reads where its topics end between subscribing (they are served by then) and joining.
 */
export async function runConsumer(
  consumer: Consumer,
  options: Omit<SubscribeOptions, "handler">,
  ready: { fail: (error: Error) => void },
  run: ConsumerRunConfig,
  starts?: StartPositions,
): Promise<void> {
  try {
    await consumer.connect();
    await whenTopicServed(() =>
      consumer.subscribe({ topics: [...options.topics], fromBeginning: options.from === "earliest" })
    );
    // Subscribed is not served: ListOffsets can still find a partition without its leader (NOT_LEADER).
    if (starts !== undefined) await whenTopicServed(() => starts.readEnds());
    await consumer.run(run);
  } catch (error) {
    ready.fail(new Error(`Consumer of group "${options.groupId}" could not start`));
    await consumer.disconnect().catch(() => {});
    throw error;
  }
}

/**
 * Resolves after the first completed fetch that follows a group join: by then kafkajs has resolved the
 * starting offsets (ListOffsets for `latest`), so a record published afterwards is not skipped; with `starts`,
 * also once the group's start on the member's partitions is committed, so it is not skipped after a restart
 * either. Rejects on a crash kafkajs will not restart from, when committing the starts fails, or when `fail`
 * is called (close before joining). A crash kafkajs restarts from (the coordinator still loading on a fresh
 * broker, say) only delays it.
 */
export function readyOf(
  consumer: Consumer,
  starts?: StartPositions,
): { promise: Promise<void>; fail: (error: Error) => void } {
  let fail!: (error: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    let joined = false;
    let fetched = false;
    const removers: (() => void)[] = [];
    const settle = (how: () => void) => {
      for (const remove of removers.splice(0)) remove();
      how();
    };
    fail = (error) => settle(() => reject(error));
    removers.push(consumer.on(consumer.events.GROUP_JOIN, () => joined = true));
    removers.push(consumer.on(consumer.events.FETCH, () => {
      if (!joined || fetched) return;
      fetched = true;
      (starts?.secured() ?? Promise.resolve()).then(() => settle(resolve), (error) => fail(error));
    }));
    removers.push(consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) fail(payload.error);
    }));
  });
  // Nobody is obliged to await `ready`; a failed join must not become an unhandled rejection.
  promise.catch(() => {});
  return { promise, fail };
}

class MemberState {
  #closing = false;
  #abandoned = false;
  #inFlight: Promise<void> | undefined;
  #abandon!: () => void;
  readonly #abandonedSignal = new Promise<void>((resolve) => this.#abandon = resolve);
  #stop!: () => void;
  /** Resolves when close() starts: it cuts retry backoffs short. */
  readonly #stopSignal = new Promise<void>((resolve) => this.#stop = resolve);
  #closed: Promise<void> | undefined;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(
    private readonly context: MemberContext,
    private readonly options: SubscribeOptions,
    private readonly consumer: Consumer,
    private readonly commits: OffsetCommitter,
    private readonly maxAttempts: number,
    private readonly failReady: (error: Error) => void,
  ) {}

  async onMessage(payload: EachMessagePayload): Promise<void> {
    // After close() starts nothing new is handled; skipped records stay uncommitted for the next owner.
    if (this.#closing) return;
    const work = this.#deliver(toIncomingRecord(payload.topic, payload.partition, payload.message), payload);
    this.#inFlight = work;
    try {
      await Promise.race([work, this.#abandonedSignal]);
    } finally {
      this.#inFlight = undefined;
    }
  }

  async #deliver(record: IncomingRecord, payload: EachMessagePayload): Promise<void> {
    const attempts = new DeliveryAttempts(this.maxAttempts);
    for (;;) {
      try {
        await this.options.handler(record);
        break;
      } catch (error) {
        if (this.#abandoned || this.#closing) return;
        const attempt = attempts.deliveries + 1;
        if (attempts.failed(error)) {
          await this.context.publishDeadLetter(dlqTopicOf(record.topic), dlqRecordOf(record, error, attempt));
          this.#log("warn", "Handler failed on the last attempt; record dead-lettered", record, error, attempt);
          break;
        }
        this.#log("warn", "Handler failed; the record will be delivered again", record, error, attempt);
        await this.#sleep(retryDelayMs(this.context.retry, attempt));
        if (this.#closing) return;
        // Retries can outlast the session timeout; a heartbeat keeps the partition (or reports a rebalance).
        await payload.heartbeat();
      }
    }
    if (this.#abandoned) return;
    // Kafka commits the offset of the next record to read.
    const next = (BigInt(record.offset) + 1n).toString();
    await this.commits.mark(record.topic, record.partition, next);
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#stop();
    this.failReady(new Error(`Subscription of group "${this.options.groupId}" closed before it joined`));
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const inFlight = this.#inFlight;
    if (inFlight !== undefined) {
      const finished = await settlesWithin(inFlight, this.context.timings.closeTimeoutMs);
      if (!finished) {
        this.#abandoned = true;
        this.#abandon();
        this.context.log({
          level: "warn",
          source: "event-log",
          message: "Closing with a record still in its handler; it stays uncommitted and will be redelivered",
          groupId: this.options.groupId,
          closeTimeoutMs: this.context.timings.closeTimeoutMs,
        });
      }
    }
    // What was handled is committed before leaving, so the next owner starts right after it.
    await this.commits.close();
    // disconnect() stops the fetch loop and sends LeaveGroup, so the partitions move without waiting for
    // the session timeout.
    await this.consumer.disconnect();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
      // close() clears the timer; the stop signal lets the retry loop see `#closing` and end.
      this.#stopSignal.then(() => resolve());
    });
  }

  #log(level: "warn", message: string, record: IncomingRecord, error: unknown, attempt: number): void {
    this.context.log({
      level,
      source: "event-log",
      message,
      groupId: this.options.groupId,
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      attempt,
      maxAttempts: this.maxAttempts,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

/** Resolves true when `promise` settles (either way) within `ms`, false otherwise. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function retryDelayMs(policy: HandlerRetryPolicy, attempt: number): number {
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 1));
}

export function toIncomingRecord(topic: string, partition: number, message: KafkaMessage): IncomingRecord {
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key === null ? "" : textOf(message.key),
    value: message.value === null ? "" : textOf(message.value),
    headers: headersOf(message.headers),
    timestampMs: Number(message.timestamp),
  };
}

function headersOf(headers: IHeaders | undefined): RecordHeaders {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    // Kafka allows a header name twice; the port has one value per name, and the last one wins.
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    result[name] = textOf(last);
  }
  return result;
}

const decoder = new TextDecoder();

function textOf(value: Uint8Array | string): string {
  return typeof value === "string" ? value : decoder.decode(value);
}
