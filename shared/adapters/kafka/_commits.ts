/**
 * @module
 * Offset commits of one consumer-group member, coalesced: a handled record marks its partition's next
 * offset, and the marks are sent in one OffsetCommit at most every `intervalMs` (and when the member
 * closes or its group rebalances). Committing after every record made the broker append to
 * `__consumer_offsets` once per record per group — on the 2-core machine the Kafka JVM spent more CPU per
 * order than the e-commerce process (bench `order_create`, machine meter). Delivery stays at least once: a
 * mark is only ever made after the handler succeeded, and a member that dies before its next commit has
 * its last `intervalMs` of records delivered again, which idempotent handlers (by eventId) absorb.
 * Private to the Kafka adapter.
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
  /** Stops the timer and flushes. */
  close(): Promise<void>;
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
  const pending = new Map<string, { topic: string; partition: number; offset: string }>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let flushing: Promise<void> = Promise.resolve();
  let closed = false;

  async function send(): Promise<void> {
    if (pending.size === 0) return;
    const offsets = [...pending.values()];
    pending.clear();
    try {
      await consumer.commitOffsets(offsets);
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
    flushing = flushing.then(send);
    return flushing;
  }

  return {
    async mark(topic, partition, nextOffset) {
      // Uncoalesced, a failed commit is the caller's error, as kafkajs would report it.
      if (intervalMs === 0) return await consumer.commitOffsets([{ topic, partition, offset: nextOffset }]);
      pending.set(`${topic}\0${partition}`, { topic, partition, offset: nextOffset });
      if (closed) return await flush();
      timer ??= setTimeout(() => {
        timer = undefined;
        void flush();
      }, intervalMs);
    },
    flush,
    close() {
      closed = true;
      return flush();
    },
  };
}
