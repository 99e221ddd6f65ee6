/**
 * @module
 * One member of an embedded consumer group: a single loop that takes the next record from its assigned
 * partitions, runs the handler with the same retry and dead-letter rule as the Kafka adapter, and commits.
 * It sleeps on a wake-up promise when there is nothing to do. A position outside the retained log (below
 * the log start after retention, or past the end) is reset as kafkajs resets it on OFFSET_OUT_OF_RANGE: to
 * the log start for a `from: "earliest"` member, to the end for `"latest"`, and committed. Private to the
 * memory adapter.
 */
import {
  batchWindowOf,
  DeliveryAttempts,
  dlqRecordOf,
  dlqTopicOf,
  type IncomingRecord,
  type OutgoingRecord,
  type SubscribeOptions,
} from "../../ports/event_log.ts";
import type { StoredRecord } from "./_event_log_store.ts";
import type { Partition } from "./_partition.ts";

/** Backoff between deliveries of a record whose handler threw; same shape and defaults as the Kafka adapter. */
export interface HandlerRetryPolicy {
  /** @default 200 */
  readonly initialDelayMs: number;
  /** @default 5_000 */
  readonly maxDelayMs: number;
}

/** A partition this member owns, and where it reads next. */
export interface Assignment {
  readonly topic: string;
  readonly partition: number;
  position: number;
  /**
   * Set while another member still runs a handler on a record of this partition (a rebalance moved it):
   * nothing is read until that handler settled and its commit counted, as a Kafka member rejoins only after
   * its running `eachMessage` returned. Cleared (and `position` taken from the group's commit) then.
   */
  handover?: Promise<void>;
}

/** What a member needs from the log that owns it. */
export interface MemberHost {
  readonly retry: HandlerRetryPolicy;
  readonly closeTimeoutMs: number;
  partitionOf(topic: string, partition: number): Partition | undefined;
  /** Commits `offset` for the member's group if the member still owns the partition. */
  commit(member: Member, assignment: Assignment, offset: number): Promise<void>;
  publish(topic: string, records: readonly OutgoingRecord[]): Promise<void>;
  leave(member: Member): void;
  warn(message: string, fields: Record<string, unknown>): void;
}

export const HANDLER_MAX_ATTEMPTS_DEFAULT = 5;

export class Member {
  /** Partitions owned after the latest rebalance, keyed by `topic\0partition`. */
  assignments = new Map<string, Assignment>();
  readonly maxAttempts: number;
  #cursor = 0;
  #closing = false;
  #abandoned = false;
  #wake: (() => void) | undefined;
  #inFlight: Promise<void> | undefined;
  /** The assignment whose record is in the handler now (`#inFlight`), if any. */
  #inFlightAssignment: Assignment | undefined;
  #loop: Promise<void> | undefined;
  #closed: Promise<void> | undefined;
  #stop!: () => void;
  readonly #stopSignal = new Promise<void>((resolve) => this.#stop = resolve);
  #abandon!: () => void;
  readonly #abandonedSignal = new Promise<void>((resolve) => this.#abandon = resolve);
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(private readonly host: MemberHost, readonly options: SubscribeOptions) {
    this.maxAttempts = options.maxAttempts ?? HANDLER_MAX_ATTEMPTS_DEFAULT;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) {
      throw new RangeError(`maxAttempts must be a positive integer, got ${this.maxAttempts}`);
    }
    // Validated like Kafka's; in process a record is delivered at once, which the window allows.
    batchWindowOf(options);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Called when records arrive on a subscribed topic or the assignment changes. */
  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  /**
   * Settles once this member no longer runs a record of `topic\0partition` (at once when it does not now);
   * a rebalance that moves the partition makes its new owner wait for it.
   */
  releaseOf(key: string): Promise<void> | undefined {
    const assignment = this.#inFlightAssignment;
    const inFlight = this.#inFlight;
    if (assignment === undefined || inFlight === undefined) return undefined;
    if (`${assignment.topic}\u0000${assignment.partition}` !== key) return undefined;
    return Promise.race([inFlight.then(() => {}, () => {}), this.#abandonedSignal]);
  }

  /** The assignment this member last ran a record of `key` under, while that record is still in flight. */
  inFlightUnder(key: string): Assignment | undefined {
    return this.releaseOf(key) === undefined ? undefined : this.#inFlightAssignment;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#stop();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.wake();
    const inFlight = this.#inFlight;
    if (inFlight !== undefined && !(await settlesWithin(inFlight, this.host.closeTimeoutMs))) {
      this.#abandoned = true;
      this.#abandon();
      this.host.warn("Closing with a record still in its handler; it stays uncommitted and will be redelivered", {
        groupId: this.options.groupId,
        closeTimeoutMs: this.host.closeTimeoutMs,
      });
    }
    await this.#loop;
    this.host.leave(this);
  }

  async #run(): Promise<void> {
    while (!this.#closing) {
      const next = this.#nextRecord();
      if (next === undefined) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        continue;
      }
      const work = "record" in next
        ? this.#deliver(next.assignment, next.record)
        : this.#reset(next.assignment, next.resetTo);
      this.#inFlight = work;
      this.#inFlightAssignment = next.assignment;
      try {
        await Promise.race([work, this.#abandonedSignal]);
      } catch (error) {
        // Only the dead-letter publish or the commit can fail here; the record stays uncommitted and is
        // tried again, as kafkajs does after an error in eachMessage.
        this.host.warn("Delivery failed outside the handler; the record will be delivered again", {
          groupId: this.options.groupId,
          error: error instanceof Error ? error.message : String(error),
        });
        await this.#sleep(this.host.retry.initialDelayMs);
      } finally {
        this.#inFlight = undefined;
        this.#inFlightAssignment = undefined;
      }
    }
  }

  /**
   * The next unread record, taking partitions in turn so a busy one cannot starve the others, or a position
   * to reset first when retention dropped the records the member would read next.
   */
  #nextRecord():
    | { assignment: Assignment; record: StoredRecord }
    | { assignment: Assignment; resetTo: number }
    | undefined {
    const owned = [...this.assignments.values()];
    for (let i = 0; i < owned.length; i++) {
      const assignment = owned[(this.#cursor + i) % owned.length];
      if (assignment.handover !== undefined) continue;
      const partition = this.host.partitionOf(assignment.topic, assignment.partition);
      if (partition === undefined) continue;
      if (assignment.position < partition.logStart || assignment.position > partition.end) {
        return { assignment, resetTo: this.options.from === "earliest" ? partition.logStart : partition.end };
      }
      if (assignment.position < partition.end) {
        this.#cursor = (this.#cursor + i + 1) % owned.length;
        return { assignment, record: partition.at(assignment.position)! };
      }
    }
    return undefined;
  }

  async #reset(assignment: Assignment, offset: number): Promise<void> {
    this.host.warn("Position is outside the retained log; resetting it as auto.offset.reset does", {
      groupId: this.options.groupId,
      topic: assignment.topic,
      partition: assignment.partition,
      position: assignment.position,
      resetTo: offset,
    });
    await this.host.commit(this, assignment, offset);
  }

  async #deliver(assignment: Assignment, stored: StoredRecord): Promise<void> {
    const record: IncomingRecord = {
      topic: assignment.topic,
      partition: assignment.partition,
      offset: String(stored.offset),
      key: stored.key,
      value: stored.value,
      headers: stored.headers,
      timestampMs: stored.timestampMs,
    };
    const attempts = new DeliveryAttempts(this.maxAttempts);
    for (;;) {
      try {
        await this.options.handler(record);
        break;
      } catch (error) {
        if (this.#abandoned || this.#closing || this.#lost(assignment)) return;
        const attempt = attempts.deliveries + 1;
        if (attempts.failed(error)) {
          await this.host.publish(dlqTopicOf(record.topic), [dlqRecordOf(record, error, attempt)]);
          this.#warnFailure("Handler failed on the last attempt; record dead-lettered", record, error, attempt);
          break;
        }
        this.#warnFailure("Handler failed; the record will be delivered again", record, error, attempt);
        await this.#sleep(Math.min(this.host.retry.maxDelayMs, this.host.retry.initialDelayMs * 2 ** (attempt - 1)));
        // A rebalance moved the partition during the backoff: its new owner delivers the record (as a Kafka
        // member's next fetch of a revoked partition never comes).
        if (this.#closing || this.#lost(assignment)) return;
      }
    }
    if (this.#abandoned) return;
    await this.host.commit(this, assignment, stored.offset + 1);
  }

  /** True once a rebalance gave the assignment's partition to another member. */
  #lost(assignment: Assignment): boolean {
    return this.assignments.get(`${assignment.topic}\u0000${assignment.partition}`) !== assignment;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
      this.#stopSignal.then(() => resolve());
    });
  }

  #warnFailure(message: string, record: IncomingRecord, error: unknown, attempt: number): void {
    this.host.warn(message, {
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

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
