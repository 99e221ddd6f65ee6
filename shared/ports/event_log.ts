/**
 * @module
 * The event-log port: Kafka semantics (topics, key-ordered partitions, consumer groups, offsets committed
 * only after the handler succeeds, headers). Real adapter: kafkajs; embedded adapter: in-process log.
 */

import { RetryLaterError } from "./retry_later.ts";

export { RetryLaterError, retryLaterOnFailure } from "./retry_later.ts";

/** Headers carried with a record; values are UTF-8 strings (trace context, event type, origin region). */
export type RecordHeaders = Readonly<Record<string, string>>;

/** A record to publish. Records with the same key land in the same partition and keep their order. */
export interface OutgoingRecord {
  readonly key: string;
  readonly value: string;
  readonly headers?: RecordHeaders;
}

/** A record as a consumer sees it. */
export interface IncomingRecord extends OutgoingRecord {
  readonly topic: string;
  readonly partition: number;
  /** Offset within the partition, as a decimal string (Kafka offsets are 64-bit). */
  readonly offset: string;
  readonly headers: RecordHeaders;
  readonly timestampMs: number;
}

/** Options for {@linkcode EventLog.subscribe}. */
export interface SubscribeOptions {
  readonly groupId: string;
  readonly topics: readonly string[];
  /**
   * Where a group with no committed offset on a partition starts: its beginning, or (`"latest"`) its end when
   * the group first sees that partition. From then on the group's position is durable, committed before
   * `ready` resolves: a record published after `ready` is delivered even if every member closes (or its
   * process restarts) first and a new member subscribes later. @default "latest"
   */
  readonly from?: "earliest" | "latest";
  /**
   * Called once per record, in order per partition. The offset is committed only after it resolves.
   * If it throws, the record is delivered again (after a short backoff) until `maxAttempts`, then it is
   * published to the dead-letter topic ({@linkcode dlqTopicOf}) as {@linkcode dlqRecordOf} builds it and
   * the group committed past it; a {@linkcode RetryLaterError} is retried without counting toward `maxAttempts`
   * and is never dead-lettered. Delivery is at least once: a record whose handler did not finish before
   * its member died, closed or lost the partition in a rebalance is delivered again, so handlers must be
   * idempotent.
   */
  readonly handler: (record: IncomingRecord) => Promise<void>;
  /** @default 5 */
  readonly maxAttempts?: number;
  /**
   * How long a record may wait before delivery so that the log can hand over several at once: a consumer
   * that is not on anyone's latency path (cache projections, analytics, partner webhooks) trades up to this
   * much delay for far fewer fetches when records trickle in. 0 delivers each record as soon as it is there.
   * It is an upper bound, not a promise to wait: an adapter may deliver sooner (the in-process log always
   * does; Kafka answers the fetch once this much time has passed or 1 MiB is ready).
   * Validated by {@linkcode batchWindowOf}. @default 0
   */
  readonly batchWindowMs?: number;
}

/**
 * Options for {@linkcode EventLog.subscribeBatches}: a group member whose handler takes consecutive records
 * of one partition at once, so a consumer can apply them in one transaction and commit once.
 */
export interface BatchSubscribeOptions extends Omit<SubscribeOptions, "handler"> {
  /**
   * Called with 1 to `batchMax` consecutive records of ONE partition, in offset order. The offset after the
   * last one is committed only after it resolves. If it throws, the same records are delivered again (after
   * a backoff) until `maxAttempts`, then each is dead-lettered ({@linkcode dlqRecordOf}) and the group
   * commits past them, so a handler should dead-letter a permanently bad record itself and apply the rest
   * (and throw {@linkcode RetryLaterError} when the effect's dependencies fail: that is retried, uncounted).
   * At least once, like `subscribe`: handlers must be idempotent.
   */
  readonly handler: (records: readonly IncomingRecord[]) => Promise<void>;
  /** Records per handler call at most. @default 500 */
  readonly batchMax?: number;
  /**
   * Partitions handled at once by this member (order within a partition is kept either way). More than 1
   * only for handlers whose partitions touch disjoint rows (keyed by what they lock). @default 1
   */
  readonly partitionsConcurrently?: number;
}

/** A running consumer-group member. */
export interface Subscription {
  /**
   * Resolves once the member has joined the group, been assigned partitions and resolved its starting
   * offsets, and a `from: "latest"` group's start on those partitions is committed: a record published after
   * `ready` reaches the group, now or, if all its members go away first, when a member subscribes again.
   * Rejects if the member cannot start (or closes first) or the start cannot be committed.
   */
  readonly ready: Promise<void>;
  /**
   * Stops fetching, lets the record in flight finish, commits, and leaves the group. The wait for the
   * record in flight is bounded (an adapter option); past it the record is abandoned uncommitted, and the
   * member that takes over its partition receives it again.
   */
  close(): Promise<void>;
}

/** Topic administration options. */
export interface TopicSpec {
  readonly name: string;
  /** @default 3 */
  readonly partitions?: number;
}

export interface EventLog {
  /** Creates the topics that do not exist yet (idempotent). */
  ensureTopics(topics: readonly TopicSpec[]): Promise<void>;
  /** Appends records; resolves only when they are durably acknowledged (acks=all). */
  publish(topic: string, records: readonly OutgoingRecord[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /**
   * Optional: a member that takes records in batches (see {@linkcode BatchSubscribeOptions}). Adapters
   * without it (the in-process log) leave callers to fall back to `subscribe`.
   */
  subscribeBatches?(options: BatchSubscribeOptions): Promise<Subscription>;
  /** Throws if the log cannot be reached within the timeout (used by `/readyz`). */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Largest {@linkcode SubscribeOptions.batchWindowMs}: a member's close waits out a fetch, so windows stay short. */
export const BATCH_WINDOW_MS_MAX = 1_000;

/** The subscription's batch window in ms (0 when unset); throws a RangeError when it is not 0–1,000. */
export function batchWindowOf(options: { readonly batchWindowMs?: number }): number {
  const windowMs = options.batchWindowMs ?? 0;
  if (!Number.isInteger(windowMs) || windowMs < 0 || windowMs > BATCH_WINDOW_MS_MAX) {
    throw new RangeError(`batchWindowMs must be a whole number from 0 to ${BATCH_WINDOW_MS_MAX}, got ${windowMs}`);
  }
  return windowMs;
}

/**
 * The bookkeeping every adapter's delivery loop shares: how many failures count toward `maxAttempts` (a
 * {@linkcode RetryLaterError} does not) and whether this failure dead-letters the record.
 */
export class DeliveryAttempts {
  readonly #maxAttempts: number;
  #counted = 0;
  #deliveries = 0;

  constructor(maxAttempts: number) {
    this.#maxAttempts = maxAttempts;
  }

  /** Records a failed delivery; true when the record is to be dead-lettered now. */
  failed(error: unknown): boolean {
    this.#deliveries++;
    if (error instanceof RetryLaterError) return false;
    this.#counted++;
    return this.#counted >= this.#maxAttempts;
  }

  /** Deliveries so far (the backoff grows with them, and dead letters report them). */
  get deliveries(): number {
    return this.#deliveries;
  }

  /** Failures that counted toward `maxAttempts`. */
  get counted(): number {
    return this.#counted;
  }
}

/** The dead-letter topic of `topic`: `<topic>.dlq`. One rule for every consumer of the platform. */
export function dlqTopicOf(topic: string): string {
  return `${topic}.dlq`;
}

/** Headers a dead-lettered record carries besides its own: why it failed and where it came from. */
export const DLQ_HEADERS = Object.freeze({
  error: "x-bv-error",
  originalTopic: "x-bv-original-topic",
  originalPartition: "x-bv-original-partition",
  originalOffset: "x-bv-original-offset",
  attempts: "x-bv-attempts",
});

/** Bound on the `x-bv-error` header, so a huge error message cannot make the dead letter too big to publish. */
export const DLQ_ERROR_CHARS_MAX = 1_000;

/**
 * The record published to {@linkcode dlqTopicOf} after the last failed attempt: same key, value and headers,
 * plus {@linkcode DLQ_HEADERS}. Every adapter builds dead letters here so they look the same everywhere.
 */
export function dlqRecordOf(record: IncomingRecord, error: unknown, attempts: number): OutgoingRecord {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return {
    key: record.key,
    value: record.value,
    headers: {
      ...record.headers,
      [DLQ_HEADERS.error]: message.slice(0, DLQ_ERROR_CHARS_MAX),
      [DLQ_HEADERS.originalTopic]: record.topic,
      [DLQ_HEADERS.originalPartition]: String(record.partition),
      [DLQ_HEADERS.originalOffset]: record.offset,
      [DLQ_HEADERS.attempts]: String(attempts),
    },
  };
}
