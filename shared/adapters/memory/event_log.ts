/**
 * @module
 * The event-log port in process: Kafka's model (key-hashed partitions, consumer groups sharing partitions,
 * offsets committed after the handler succeeds, the same retry and dead-letter rule) without a broker.
 * With `dataDir`, records and committed offsets are appended to JSON-lines files, so whatever `publish`
 * acknowledged survives a restart of the process. Each partition is bounded like a Kafka log (`retention`):
 * old records are dropped on publish and on a timer, records keep their offsets, and a group whose position
 * falls outside the retained log is reset the way kafkajs resets it (see `_event_log_member.ts`).
 */
import type { EventLog, OutgoingRecord, Subscription, TopicSpec } from "../../ports/event_log.ts";
import { type Assignment, type HandlerRetryPolicy, Member, type MemberHost } from "./_event_log_member.ts";
import { EventLogStore, offsetKeyOf, type StoredRecord } from "./_event_log_store.ts";
import { Partition, type RetentionPolicy } from "./_partition.ts";
import { partitionOfKey } from "./_murmur2.ts";

export type { HandlerRetryPolicy, RetentionPolicy };

/**
 * Kafka's `retention.ms` default (7 days). The count and size bounds are ours (Kafka has no count bound and
 * an unbounded `retention.bytes`): a typical event (a ~460-character envelope plus trace headers) measured
 * ~670 bytes of heap, so 100,000 records is ~64 MiB per partition, and 64 MiB of keys, values and headers
 * caps partitions of larger records. Which binds first depends on the record size; both bound memory.
 */
export const RETENTION_DEFAULT: RetentionPolicy = Object.freeze({
  ms: 7 * 24 * 60 * 60 * 1000,
  records: 100_000,
  bytes: 64 * 1024 * 1024,
});
/** How often retention runs without publishes (Kafka's `log.retention.check.interval.ms` is 5 minutes). */
export const RETENTION_CHECK_INTERVAL_MS_DEFAULT = 60_000;

export interface MemoryEventLogOptions {
  /** Where to persist records and offsets; without it everything lives in memory only. */
  readonly dataDir?: string;
  /** Partitions of topics created without a count (auto-created on publish or subscribe). @default 3 */
  readonly partitionsDefault?: number;
  /** How long a subscription's `close()` waits for the record in flight. @default 10_000 */
  readonly closeTimeoutMs?: number;
  /** Backoff between deliveries of a record whose handler threw. @default { initialDelayMs: 200, maxDelayMs: 5_000 } */
  readonly handlerRetry?: HandlerRetryPolicy;
  /** fsync each append: survives power loss, not only a crashed process. Costs a disk flush per publish. @default false */
  readonly fsync?: boolean;
  /** Where warnings go. @default JSON lines on stderr */
  readonly warn?: (message: string, fields: Record<string, unknown>) => void;
  /** How much each partition keeps; unset fields take {@linkcode RETENTION_DEFAULT}'s. */
  readonly retention?: Partial<RetentionPolicy>;
  /** How often retention runs besides on publish. @default 60_000 */
  readonly retentionCheckIntervalMs?: number;
  /** Milliseconds since the epoch: record timestamps and retention by age. @default Date.now */
  readonly now?: () => number;
}

interface Group {
  readonly id: string;
  readonly members: Member[];
  /** `topic\0partition` → next offset to read. */
  readonly committed: Map<string, number>;
  /** Writes of positions resolved from "latest" still on their way to disk; `ready` waits for them. */
  readonly startWrites: Set<Promise<void>>;
}

/** Creates an embedded event log; with `dataDir` it first loads what an earlier process left there. */
export function createMemoryEventLog(options: MemoryEventLogOptions = {}): EventLog {
  const partitionsDefault = options.partitionsDefault ?? 3;
  assertPartitions("partitionsDefault", partitionsDefault);
  const retention: RetentionPolicy = Object.freeze({ ...RETENTION_DEFAULT, ...options.retention });
  for (const [name, value] of Object.entries(retention)) assertPositive(`retention.${name}`, value);
  const retentionCheckIntervalMs = options.retentionCheckIntervalMs ?? RETENTION_CHECK_INTERVAL_MS_DEFAULT;
  assertPositive("retentionCheckIntervalMs", retentionCheckIntervalMs);
  const now = options.now ?? Date.now;
  const topics = new Map<string, Partition[]>();
  const groups = new Map<string, Group>();
  const store = options.dataDir === undefined
    ? undefined
    : new EventLogStore(options.dataDir, { fsync: options.fsync ?? false });
  const opened = (async () => {
    if (store === undefined) return;
    const loaded = await store.load();
    for (const [topic, partitions] of loaded.topics) topics.set(topic, partitions);
    for (const [id, committed] of loaded.offsets) {
      groups.set(id, { id, members: [], committed, startWrites: new Set() });
    }
    // Records that expired while the process was down go before anyone reads them.
    await enforceRetention();
  })();
  // Surfaced by the first call; an unobserved load failure must not crash the process on its own.
  opened.catch(() => {});
  let closed = false;
  // Appends, topic creations and commits go through one queue, so file order is offset order.
  let writes: Promise<unknown> = Promise.resolve();
  const serially = <T>(write: () => Promise<T>): Promise<T> => {
    const result = writes.then(write);
    writes = result.catch(() => {});
    return result;
  };
  const warn = options.warn ??
    ((message: string, fields: Record<string, unknown>) =>
      console.error(
        JSON.stringify({ time: new Date().toISOString(), level: "warn", source: "event-log", message, ...fields }),
      ));

  async function open(action: string): Promise<void> {
    if (closed) throw new Error(`Cannot ${action}: the event log is closed`);
    await opened;
  }

  /** The topic's partitions, created (and persisted) first when it does not exist. */
  async function topicOf(name: string, partitions = partitionsDefault): Promise<Partition[]> {
    const existing = topics.get(name);
    if (existing !== undefined) return existing;
    assertTopicName(name);
    return await serially(async () => {
      const raced = topics.get(name);
      if (raced !== undefined) return raced;
      await store?.createTopic(name, partitions);
      const made = Array.from({ length: partitions }, () => new Partition());
      topics.set(name, made);
      return made;
    });
  }

  async function publish(topic: string, records: readonly OutgoingRecord[]): Promise<void> {
    await open(`publish to "${topic}"`);
    for (const record of records) assertRecord(topic, record);
    if (records.length === 0) return;
    const partitions = await topicOf(topic);
    await serially(async () => {
      const timestampMs = now();
      const byPartition = new Map<number, StoredRecord[]>();
      for (const { key, value, headers } of records) {
        const partition = partitionOfKey(key, partitions.length);
        const batch = byPartition.get(partition) ?? [];
        const offset = partitions[partition].end + batch.length;
        batch.push({ offset, key, value, headers: { ...headers }, timestampMs });
        byPartition.set(partition, batch);
      }
      for (const [index, batch] of byPartition) {
        const partition = partitions[index];
        // Retention is applied as part of the append (amortized: it walks only the records it drops), so a
        // burst can never leave a partition above its bounds.
        const logStart = partition.retainedStart(retention, timestampMs, batch);
        const moved = logStart > partition.logStart ? logStart : undefined;
        // Written before consumers can see it: a record handled and committed is always on disk too.
        await store?.append(topic, index, batch, moved);
        partition.append(batch);
        if (moved === undefined) continue;
        const dropped = partition.dropBefore(moved);
        await store?.dropped(topic, index, partition, dropped, true);
      }
    });
    for (const group of groups.values()) {
      for (const member of group.members) if (member.options.topics.includes(topic)) member.wake();
    }
  }

  /** Spreads each topic's partitions over the members subscribed to it, in join order. */
  function rebalance(group: Group): void {
    const next = new Map<Member, Map<string, Assignment>>(group.members.map((m) => [m, new Map()]));
    const topicNames = new Set(group.members.flatMap((m) => m.options.topics));
    for (const topic of topicNames) {
      const subscribers = group.members.filter((m) => m.options.topics.includes(topic));
      const count = topics.get(topic)?.length ?? 0;
      for (let partition = 0; partition < count; partition++) {
        const member = subscribers[partition % subscribers.length];
        const key = offsetKeyOf(topic, partition);
        // A partition a member keeps stays where it was, so a record in flight is not handed to itself twice.
        const kept = member.assignments.get(key);
        next.get(member)!.set(key, kept ?? handedTo(group, member, topic, partition));
      }
    }
    for (const [member, assignments] of next) {
      member.assignments = assignments;
      member.wake();
    }
  }

  /**
   * A new assignment of a partition to `member`. When another member of the group still runs a record of
   * it, the new owner waits until that handler settled (its commit counts) and then starts from the group's
   * position: one handler per partition at a time, as on Kafka, where a member rejoins a rebalance only
   * after its running handler returned.
   */
  function handedTo(group: Group, member: Member, topic: string, partition: number): Assignment {
    const key = offsetKeyOf(topic, partition);
    const release = group.members.map((other) => other === member ? undefined : other.releaseOf(key))
      .find((promise) => promise !== undefined);
    if (release === undefined) return { topic, partition, position: startOf(group, member, topic, partition) };
    const assignment: Assignment = { topic, partition, position: 0 };
    assignment.handover = release.then(() => {
      assignment.position = startOf(group, member, topic, partition);
      assignment.handover = undefined;
      member.wake();
    });
    return assignment;
  }

  function startOf(group: Group, member: Member, topic: string, partition: number): number {
    const key = offsetKeyOf(topic, partition);
    const committed = group.committed.get(key);
    if (committed !== undefined) return committed;
    if (member.options.from === "earliest") return topics.get(topic)?.[partition].logStart ?? 0;
    // "latest" is resolved once and committed as the group's position (on disk too, before `ready`), so a
    // record published after `ready` is not skipped if the partition moves to another member, or every
    // member closes and the process restarts, before a handled record commits.
    const end = topics.get(topic)?.[partition].end ?? 0;
    group.committed.set(key, end);
    if (store !== undefined) writeStart(group, topic, partition, end);
    return end;
  }

  /**
   * Appends a resolved start to the offsets file. Queued behind writes already waiting, and ahead of any
   * commit of a record handled from it, so it never lands after (and over) a later position.
   */
  function writeStart(group: Group, topic: string, partition: number, offset: number): void {
    const written = serially(() => store!.commit(group.id, topic, partition, offset, committedOffsets()));
    group.startWrites.add(written);
    written.then(() => group.startWrites.delete(written), (error) => {
      group.startWrites.delete(written);
      warn("A group's start position could not be written; a restart before its first commit starts it again", {
        groupId: group.id,
        topic,
        partition,
        error: error instanceof Error ? error.message : String(error),
      });
    });
  }

  const host: MemberHost = {
    retry: options.handlerRetry ?? { initialDelayMs: 200, maxDelayMs: 5_000 },
    closeTimeoutMs: options.closeTimeoutMs ?? 10_000,
    partitionOf: (topic, partition) => topics.get(topic)?.[partition],
    async commit(member, assignment, offset) {
      const key = offsetKeyOf(assignment.topic, assignment.partition);
      const group = groups.get(member.options.groupId)!;
      // A member that lost the partition in a rebalance must not move the new owner's position, unless the
      // new owner is still waiting for this very handler to finish (the handover in `handedTo`).
      if (member.assignments.get(key) !== assignment && !handingOver(group, member, key, assignment)) return;
      await serially(async () => {
        group.committed.set(key, offset);
        await store?.commit(member.options.groupId, assignment.topic, assignment.partition, offset, committedOffsets());
      });
      assignment.position = offset;
    },
    publish,
    leave(member) {
      const group = groups.get(member.options.groupId);
      if (group === undefined) return;
      const index = group.members.indexOf(member);
      if (index >= 0) group.members.splice(index, 1);
      member.assignments = new Map();
      rebalance(group);
    },
    warn,
  };

  function handingOver(group: Group, member: Member, key: string, assignment: Assignment): boolean {
    if (member.inFlightUnder(key) !== assignment) return false;
    return group.members.some((other) => other !== member && other.assignments.get(key)?.handover !== undefined);
  }

  /** Applies retention to every partition: the timer's job, for topics nobody publishes to. */
  async function enforceRetention(): Promise<void> {
    const nowMs = now();
    for (const [topic, partitions] of topics) {
      for (const [index, partition] of partitions.entries()) {
        const logStart = partition.retainedStart(retention, nowMs);
        if (logStart === partition.logStart) continue;
        const dropped = partition.dropBefore(logStart);
        await store?.dropped(topic, index, partition, dropped, false);
      }
    }
  }
  // Unref'd: a log nobody closed must not keep the process alive for its housekeeping.
  const retentionTimer = setInterval(() => {
    if (closed) return;
    serially(() => opened.then(enforceRetention)).catch((error) =>
      warn("Retention could not be applied; it is tried again on the next check", {
        error: error instanceof Error ? error.message : String(error),
      })
    );
  }, retentionCheckIntervalMs);
  Deno.unrefTimer(retentionTimer);

  function committedOffsets(): Map<string, Map<string, number>> {
    return new Map([...groups].map(([groupId, group]) => [groupId, group.committed]));
  }

  return {
    async ensureTopics(specs: readonly TopicSpec[]) {
      await open("ensure topics");
      for (const spec of specs) {
        if (spec.partitions !== undefined) assertPartitions(`Topic "${spec.name}" partitions`, spec.partitions);
        // Like Kafka's CreateTopics, an existing topic keeps its partition count.
        await topicOf(spec.name, spec.partitions ?? partitionsDefault);
      }
    },
    publish,
    async subscribe(subscribeOptions): Promise<Subscription> {
      await open(`subscribe group "${subscribeOptions.groupId}"`);
      if (subscribeOptions.topics.length === 0) {
        throw new TypeError(`Subscription of group "${subscribeOptions.groupId}" has no topics`);
      }
      const member = new Member(host, subscribeOptions);
      for (const topic of subscribeOptions.topics) await topicOf(topic);
      const id = subscribeOptions.groupId;
      let group = groups.get(id);
      if (group === undefined) {
        groups.set(id, group = { id, members: [], committed: new Map(), startWrites: new Set() });
      }
      group.members.push(member);
      rebalance(group);
      member.start();
      // Ready once the positions this join resolved are on disk: what is published next is the group's.
      const ready = Promise.all([...group.startWrites]).then(() => {});
      // Nobody is obliged to await `ready`; a failed write is warned about above.
      ready.catch(() => {});
      return { ready, close: () => member.close() };
    },
    async ping() {
      await open("ping");
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(retentionTimer);
      await opened.catch(() => {});
      const members = [...groups.values()].flatMap((group) => group.members);
      await Promise.allSettled(members.map((member) => member.close()));
      await writes;
    },
  };
}

function assertPositive(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive whole number, got ${value}`);
  }
}

function assertPartitions(name: string, partitions: number): void {
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError(`${name} must be a positive whole number, got ${partitions}`);
  }
}

/** Kafka's rule (letters, digits, ".", "_", "-"; at most 249), which also keeps the names safe as folder names. */
function assertTopicName(name: string): void {
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(name) || name === "." || name === "..") {
    throw new TypeError(`Invalid topic name "${name}": use 1-249 letters, digits, ".", "_" or "-"`);
  }
}

function assertRecord(topic: string, record: OutgoingRecord): void {
  if (typeof record.key !== "string" || typeof record.value !== "string") {
    throw new TypeError(`Records published to "${topic}" need a string key and a string value`);
  }
}
