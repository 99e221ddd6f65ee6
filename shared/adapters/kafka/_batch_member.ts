/**
 * @module
 * A consumer-group member that hands its handler consecutive records of one partition at once
 * (`EventLog.subscribeBatches`): one handler call and one offset commit per chunk of at most `batchMax`
 * records instead of one of each per record, which is what lets a consumer apply a fetch in one transaction.
 * Retries, dead letters and the bounded close follow `_member.ts`. Private to the Kafka adapter.
 */
import type { Consumer, EachBatchPayload } from "kafkajs";
import {
  type BatchSubscribeOptions,
  DeliveryAttempts,
  dlqRecordOf,
  dlqTopicOf,
  type IncomingRecord,
  type Subscription,
} from "../../ports/event_log.ts";
import type { OffsetCommitter } from "./_commits.ts";
import {
  committerOf,
  consumerOf,
  maxAttemptsOf,
  type MemberContext,
  readyOf,
  retryDelayMs,
  runConsumer,
  settlesWithin,
  toIncomingRecord,
} from "./_member.ts";
import { startPositionsFor } from "./_start_positions.ts";

/** Records per handler call unless the caller says otherwise. */
export const BATCH_MAX_DEFAULT = 500;
const BATCH_MAX_LIMIT = 10_000;

/** Joins `options.groupId` and starts consuming in batches; `ready` and start positions work as in `startMember`. */
export async function startBatchMember(
  context: MemberContext,
  options: BatchSubscribeOptions,
): Promise<Subscription> {
  const maxAttempts = maxAttemptsOf(options);
  const batchMax = options.batchMax ?? BATCH_MAX_DEFAULT;
  if (!Number.isInteger(batchMax) || batchMax < 1 || batchMax > BATCH_MAX_LIMIT) {
    throw new RangeError(`batchMax must be a whole number from 1 to ${BATCH_MAX_LIMIT}, got ${batchMax}`);
  }
  const consumer = consumerOf(context, options);
  const commits = committerOf(context, consumer, options.groupId);
  const starts = startPositionsFor(context, consumer, commits, options);
  const ready = readyOf(consumer, starts);
  const state = new BatchMemberState(context, options, consumer, commits, maxAttempts, batchMax, ready.fail);
  await runConsumer(consumer, options, ready, {
    autoCommit: false,
    // Offsets are resolved per chunk below, so a rebalance mid-fetch resumes after the last applied chunk.
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: options.partitionsConcurrently ?? 1,
    eachBatch: (payload) => state.onBatch(payload),
  }, starts);
  return { ready: ready.promise, close: () => state.close() };
}

class BatchMemberState {
  #closing = false;
  #abandoned = false;
  readonly #inFlight = new Set<Promise<void>>();
  #abandon!: () => void;
  readonly #abandonedSignal = new Promise<void>((resolve) => this.#abandon = resolve);
  #stop!: () => void;
  readonly #stopSignal = new Promise<void>((resolve) => this.#stop = resolve);
  #closed: Promise<void> | undefined;

  constructor(
    private readonly context: MemberContext,
    private readonly options: BatchSubscribeOptions,
    private readonly consumer: Consumer,
    private readonly commits: OffsetCommitter,
    private readonly maxAttempts: number,
    private readonly batchMax: number,
    private readonly failReady: (error: Error) => void,
  ) {}

  async onBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    for (let start = 0; start < batch.messages.length; start += this.batchMax) {
      // A rebalance or close: what was not resolved is fetched again by whoever owns the partition next.
      if (this.#closing || !payload.isRunning() || payload.isStale()) return;
      const records = batch.messages.slice(start, start + this.batchMax)
        .map((message) => toIncomingRecord(batch.topic, batch.partition, message));
      const work = this.#deliver(records, payload);
      const settled = work.then(() => {}, () => {});
      this.#inFlight.add(settled);
      let committed = false;
      try {
        committed = await Promise.race([work, this.#abandonedSignal.then(() => false)]);
      } finally {
        this.#inFlight.delete(settled);
      }
      if (!committed) return;
      payload.resolveOffset(records[records.length - 1].offset);
      await payload.heartbeat();
    }
  }

  /** Resolves true once the chunk was handled (or dead-lettered) and committed; false when closing cut it short. */
  async #deliver(records: readonly IncomingRecord[], payload: EachBatchPayload): Promise<boolean> {
    const attempts = new DeliveryAttempts(this.maxAttempts);
    for (;;) {
      try {
        await this.options.handler(records);
        break;
      } catch (error) {
        if (this.#abandoned || this.#closing) return false;
        const attempt = attempts.deliveries + 1;
        if (attempts.failed(error)) {
          for (const record of records) {
            await this.context.publishDeadLetter(dlqTopicOf(record.topic), dlqRecordOf(record, error, attempt));
          }
          this.#log("Batch handler failed on the last attempt; its records were dead-lettered", records, error);
          break;
        }
        this.#log("Batch handler failed; the records will be delivered again", records, error);
        await this.#sleep(retryDelayMs(this.context.retry, attempt));
        if (this.#closing) return false;
        await payload.heartbeat();
      }
    }
    if (this.#abandoned) return false;
    const last = records[records.length - 1];
    const next = (BigInt(last.offset) + 1n).toString();
    await this.commits.mark(last.topic, last.partition, next);
    return true;
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#stop();
    this.failReady(new Error(`Subscription of group "${this.options.groupId}" closed before it joined`));
    if (this.#inFlight.size > 0) {
      const finished = await settlesWithin(Promise.all(this.#inFlight), this.context.timings.closeTimeoutMs);
      if (!finished) {
        this.#abandoned = true;
        this.#abandon();
      }
    }
    await this.commits.close();
    await this.consumer.disconnect();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#stopSignal.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #log(message: string, records: readonly IncomingRecord[], error: unknown): void {
    this.context.log({
      level: "warn",
      source: "event-log",
      message,
      groupId: this.options.groupId,
      topic: records[0].topic,
      partition: records[0].partition,
      offset: records[0].offset,
      records: records.length,
      maxAttempts: this.maxAttempts,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}
