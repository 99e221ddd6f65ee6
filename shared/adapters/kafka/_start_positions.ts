/**
 * @module
 * Makes where a `from: "latest"` group starts durable as soon as a member is given a partition. kafkajs (like
 * the Java client) resolves "latest" with ListOffsets on every join for a partition the group has no committed
 * offset for, and commits nothing there until a record of it is handled: records published to such a
 * partition while every member was down were skipped after the restart (tulios/kafkajs#1453). So after each
 * join the member commits a start for each partition it was given that has none, through its own consumer.
 * That commit carries the member's generation, so the broker refuses it once the group has moved on
 * (ILLEGAL_GENERATION; the next join commits again), and the OffsetFetch that found no offset ran after the
 * join, when commits of the partitions' earlier owners had landed or could no longer land. A commit of this
 * member's handled records is never moved back: both go through one queue (`_commits.ts`).
 *
 * The start is the partition's end as read when the member subscribed, before it joined. Every ListOffsets
 * kafkajs sends after the join answers that or more, so the committed start is never past where kafkajs
 * consumes from: nothing is skipped. Reading the end after the join could be: a record published between
 * kafkajs's ListOffsets and ours would be consumed now but skipped after a restart. The price is the other
 * way round: records published while the member was joining, which kafkajs passed over, are delivered after a
 * restart. A partition the member did not know when it subscribed (the topic grew) starts at its beginning,
 * since all it holds came later. Private to the Kafka adapter.
 */
import type { Admin, Consumer, IMemberAssignment } from "kafkajs";
import type { OffsetCommitter, PartitionOffset } from "./_commits.ts";
import type { KafkaLogSink } from "./_logging.ts";
import { whenTopicServed } from "./_topic_served.ts";

/** What a member of a "latest" group does about its start positions. */
export interface StartPositions {
  /** Reads where the subscribed topics end; call once they are served and before the consumer runs. */
  readEnds(): Promise<void>;
  /**
   * Resolves once the newest join's partitions without a committed offset have one (waiting out joins that
   * a rebalance cut short); rejects when committing them failed otherwise.
   */
  secured(): Promise<void>;
}

/** Error types that mean "the group moved to a new generation": the join that follows secures its own partitions. */
const REBALANCE_ERRORS = new Set([
  "REBALANCE_IN_PROGRESS",
  "ILLEGAL_GENERATION",
  "UNKNOWN_MEMBER_ID",
  "NOT_COORDINATOR_FOR_GROUP",
]);

interface Join {
  /** true once secured; false when a rebalance cut it short. Rejects on any other failure. */
  readonly done: Promise<boolean>;
}

/**
 * What a member needs for its start positions: none for a `from: "earliest"` group (kafkajs resolves it to the
 * log start, which skips nothing), {@link startPositionsOf} otherwise.
 */
export function startPositionsFor(
  context: { readonly admin: () => Promise<Admin>; readonly log: KafkaLogSink },
  consumer: Consumer,
  commits: OffsetCommitter,
  options: { readonly groupId: string; readonly topics: readonly string[]; readonly from?: "earliest" | "latest" },
): StartPositions | undefined {
  if (options.from === "earliest") return undefined;
  return startPositionsOf(consumer, context.admin, commits, options, context.log);
}

/** Listens to `consumer`'s joins and commits the start of each partition it is given that has no offset. */
export function startPositionsOf(
  consumer: Consumer,
  admin: () => Promise<Admin>,
  commits: OffsetCommitter,
  options: { readonly groupId: string; readonly topics: readonly string[] },
  log: KafkaLogSink,
): StartPositions {
  /** `topic\0partition` → the end read before the first join. */
  const ends = new Map<string, string>();
  let joins = 0;
  let current: Join | undefined;
  let joined!: () => void;
  let nextJoin = new Promise<void>((resolve) => joined = resolve);

  /** true once the join's partitions have a committed start; false when a newer join or a restart cut it short. */
  async function secure(assignment: IMemberAssignment, join: number): Promise<boolean> {
    const topics = Object.keys(assignment).filter((topic) => assignment[topic].length > 0);
    if (topics.length === 0) return true;
    const client = await admin();
    const starts: PartitionOffset[] = [];
    for (const { topic, partitions } of await client.fetchOffsets({ groupId: options.groupId, topics })) {
      const owned = new Set(assignment[topic] ?? []);
      for (const { partition, offset } of partitions) {
        if (!owned.has(partition) || !isUnset(offset)) continue;
        const end = ends.get(keyOf(topic, partition)) ?? await beginningOf(client, topic, partition);
        starts.push({ topic, partition, offset: end });
      }
    }
    if (starts.length === 0) return true;
    // A newer join may have given these partitions to another member; it secures its own. Checked again when
    // the commit's turn in the queue comes, since kafkajs sends it with the generation of that moment.
    if (!await commits.start(starts, () => join === joins)) return false;
    // kafkajs's commitOffsets returns without sending while its runner is not running (a crash it restarts
    // from, a close): only an OffsetFetch tells whether the starts landed.
    const committed = new Set<string>();
    for (const { topic, partitions } of await client.fetchOffsets({ groupId: options.groupId, topics })) {
      for (const { partition, offset } of partitions) if (!isUnset(offset)) committed.add(keyOf(topic, partition));
    }
    return starts.every(({ topic, partition }) => committed.has(keyOf(topic, partition)));
  }

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const join = ++joins;
    // A partition whose leader is moving (a broker restarted) is waited out, not a failed start.
    const done = whenTopicServed(() => secure(payload.memberAssignment, join)).catch((error) => {
      if (isRebalance(error)) return false;
      log({
        level: "warn",
        source: "event-log",
        message: "Could not commit where the group starts; a restart before its first commit starts at the end again",
        groupId: options.groupId,
        error: error instanceof Error ? error.message : String(error),
      });
      throw error;
    });
    // Observed through `secured()`; a failure nobody waits for was logged above.
    done.catch(() => {});
    current = { done };
    const wake = joined;
    nextJoin = new Promise<void>((resolve) => joined = resolve);
    wake();
  });

  return {
    async readEnds() {
      const client = await admin();
      for (const topic of options.topics) {
        for (const { partition, high } of await client.fetchTopicOffsets(topic)) {
          ends.set(keyOf(topic, partition), high);
        }
      }
    },
    async secured() {
      for (;;) {
        const seen = current;
        const later = nextJoin;
        if (seen === undefined) {
          await later;
          continue;
        }
        const secured = await seen.done;
        if (seen !== current) continue;
        if (secured) return;
        await later;
      }
    },
  };
}

/** kafkajs reports a partition without a committed offset as "-1". */
function isUnset(offset: string): boolean {
  return offset === "" || BigInt(offset) < 0n;
}

async function beginningOf(client: Admin, topic: string, partition: number): Promise<string> {
  const offsets = await client.fetchTopicOffsets(topic);
  const found = offsets.find((entry) => entry.partition === partition);
  if (found === undefined) throw new Error(`Topic "${topic}" has no partition ${partition}`);
  return found.low;
}

function isRebalance(error: unknown): boolean {
  // kafkajs may wrap the protocol error (retries exceeded): look through the cause chain.
  for (
    let e = error as { type?: string; cause?: unknown; originalError?: unknown } | undefined, depth = 0;
    e && depth < 5;
    depth++
  ) {
    if (e.type !== undefined && REBALANCE_ERRORS.has(e.type)) return true;
    e = (e.cause ?? e.originalError) as typeof e;
  }
  return false;
}

function keyOf(topic: string, partition: number): string {
  return `${topic}\0${partition}`;
}
