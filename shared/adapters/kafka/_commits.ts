/**
 * @module
 * Offset commits of one consumer-group member, coalesced: a handled record marks its partition's next
 * offset, and the marks are sent in one OffsetCommit at most every `intervalMs` (and when the member
 * closes or its group rebalances). Committing after every record made the broker append to
 * `__consumer_offsets` once per record per group — on the 2-core machine the Kafka JVM spent more CPU per
 * order than the e-commerce process (bench `order_create`, machine meter). Delivery stays at least once: a
 * mark is only ever made after the handler succeeded, and a member that dies before its next commit has
 * its last `intervalMs` of records delivered again, which idempotent handlers (by eventId) absorb. The
 * start positions of a "latest" group (`_start_positions.ts`) go through the same queue, so one never lands
 * after, and over, a record's commit. Private to the Kafka adapter.
 */
import type { Consumer } from "kafkajs";
import type { KafkaLogSink } from "./_logging.ts";

/** What the member needs of a committer. */
export interface OffsetCommitter {
  /**
   * Records that everything before `nextOffset` of the partition is handled. With interval 0 the commit is
   * sent before this resolves; otherwise it is sent with the next coalesced commit.
   */
  mark(topic: string, partition: number, nextOffset: string): Promise<void>;
  /** Sends what is marked and not yet committed; a failure is logged (the records will be redelivered). */
  flush(): Promise<void>;
  /**
   * Commits where the group starts on partitions that have no committed offset, at once, after the commits
   * queued before it, if `current()` still holds when its turn comes (kafkajs sends a commit with the
   * generation of the moment it is sent: a start worked out for an older join would land under a newer one).
   * A partition for which a commit of this member's marks landed is left out: the mark is past the start.
   * Resolves whether it was sent; rejects when the commit fails.
   */
  start(offsets: readonly PartitionOffset[], current: () => boolean): Promise<boolean>;
  /** Stops the timer and flushes. */
  close(): Promise<void>;
}

/** A partition's next offset to read, as kafkajs commits it. */
export interface PartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/** Creates the committer of `consumer`'s group; `intervalMs` 0 commits every mark at once. */
export function createOffsetCommitter(
  consumer: Consumer,
  groupId: string,
  intervalMs: number,
  log: KafkaLogSink,
): OffsetCommitter {
  if (!Number.isFinite(intervalMs) || intervalMs < 0) {
    throw new RangeError(`commitIntervalMs must be 0 or more, got ${intervalMs}`);
  }
  /** `topic\0partition` → next offset to commit, in mark order. */
  const pending = new Map<string, PartitionOffset>();
  /** Partitions with a landed commit of a mark: a start must not move them back. */
  const landed = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let flushing: Promise<void> = Promise.resolve();
  let closed = false;

  /** Runs `commit` after every commit queued before it (one at a time, in order); its failure is the caller's. */
  function queued(commit: () => Promise<void>): Promise<void> {
    const result = flushing.then(commit);
    flushing = result.catch(() => {});
    return result;
  }

  async function commitMarks(offsets: readonly PartitionOffset[]): Promise<void> {
    await consumer.commitOffsets([...offsets]);
    for (const { topic, partition } of offsets) landed.add(keyOf(topic, partition));
  }

  async function send(): Promise<void> {
    if (pending.size === 0) return;
    const offsets = [...pending.values()];
    pending.clear();
    try {
      await commitMarks(offsets);
    } catch (error) {
      // A rebalance took the partitions (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION) or the broker is away:
      // the next owner starts from the last commit that did land, so these records come again.
      log({
        level: "warn",
        source: "event-log",
        message: "Coalesced offset commit failed; records since the last commit will be delivered again",
        groupId,
        partitions: offsets.length,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  function flush(): Promise<void> {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    // One commit at a time, in order, so an older offset never lands after a newer one.
    return queued(send);
  }

  return {
    async mark(topic, partition, nextOffset) {
      // Uncoalesced, a failed commit is the caller's error, as kafkajs would report it.
      if (intervalMs === 0) return await queued(() => commitMarks([{ topic, partition, offset: nextOffset }]));
      pending.set(keyOf(topic, partition), { topic, partition, offset: nextOffset });
      if (closed) return await flush();
      timer ??= setTimeout(() => {
        timer = undefined;
        void flush();
      }, intervalMs);
    },
    flush,
    start(offsets, current) {
      let sent = false;
      return queued(async () => {
        if (!current()) return;
        const unmarked = offsets.filter(({ topic, partition }) => !landed.has(keyOf(topic, partition)));
        if (unmarked.length > 0) await consumer.commitOffsets([...unmarked]);
        sent = true;
      }).then(() => sent);
    },
    close() {
      closed = true;
      return flush();
    },
  };
}

function keyOf(topic: string, partition: number): string {
  return `${topic}\0${partition}`;
}
