/**
 * @module
 * The event-log port in process: Kafka's model (key-hashed partitions, consumer groups sharing partitions,
 * offsets committed after the handler succeeds, the same retry and dead-letter rule) without a broker.
 * With `dataDir`, records and committed offsets are appended to JSON-lines files, so whatever `publish`
 * acknowledged survives a restart of the process.
 */
import type { EventLog, OutgoingRecord, Subscription, TopicSpec } from "../../ports/event_log.ts";
import { type Assignment, type HandlerRetryPolicy, Member, type MemberHost } from "./_event_log_member.ts";
import { EventLogStore, offsetKeyOf, type StoredRecord } from "./_event_log_store.ts";
import { partitionOfKey } from "./_murmur2.ts";

export type { HandlerRetryPolicy };

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
}

interface Group {
  readonly members: Member[];
  /** `topic\0partition` → next offset to read. */
  readonly committed: Map<string, number>;
}

/** Creates an embedded event log; with `dataDir` it first loads what an earlier process left there. */
export function createMemoryEventLog(options: MemoryEventLogOptions = {}): EventLog {
  const partitionsDefault = options.partitionsDefault ?? 3;
  assertPartitions("partitionsDefault", partitionsDefault);
  const topics = new Map<string, StoredRecord[][]>();
  const groups = new Map<string, Group>();
  const store = options.dataDir === undefined
    ? undefined
    : new EventLogStore(options.dataDir, { fsync: options.fsync ?? false });
  const opened = (async () => {
    if (store === undefined) return;
    const loaded = await store.load();
    for (const [topic, partitions] of loaded.topics) topics.set(topic, partitions);
    for (const [groupId, committed] of loaded.offsets) groups.set(groupId, { members: [], committed });
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
  async function topicOf(name: string, partitions = partitionsDefault): Promise<StoredRecord[][]> {
    const existing = topics.get(name);
    if (existing !== undefined) return existing;
    assertTopicName(name);
    return await serially(async () => {
      const raced = topics.get(name);
      if (raced !== undefined) return raced;
      await store?.createTopic(name, partitions);
      const made = Array.from({ length: partitions }, (): StoredRecord[] => []);
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
      const timestampMs = Date.now();
      const byPartition = new Map<number, StoredRecord[]>();
      for (const { key, value, headers } of records) {
        const partition = partitionOfKey(key, partitions.length);
        const batch = byPartition.get(partition) ?? [];
        const offset = partitions[partition].length + batch.length;
        batch.push({ offset, key, value, headers: { ...headers }, timestampMs });
        byPartition.set(partition, batch);
      }
      // Written before consumers can see it: a record handled and committed is always on disk too.
      for (const [partition, batch] of byPartition) await store?.append(topic, partition, batch);
      for (const [partition, batch] of byPartition) partitions[partition].push(...batch);
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
        next.get(member)!.set(key, kept ?? { topic, partition, position: startOf(group, member, topic, partition) });
      }
    }
    for (const [member, assignments] of next) {
      member.assignments = assignments;
      member.wake();
    }
  }

  function startOf(group: Group, member: Member, topic: string, partition: number): number {
    const key = offsetKeyOf(topic, partition);
    const committed = group.committed.get(key);
    if (committed !== undefined) return committed;
    if (member.options.from === "earliest") return 0;
    // "latest" is resolved once and remembered as the group's position, so a record published after
    // `ready` is not skipped if the partition moves to another member before the first commit.
    const end = topics.get(topic)?.[partition].length ?? 0;
    group.committed.set(key, end);
    return end;
  }

  const host: MemberHost = {
    retry: options.handlerRetry ?? { initialDelayMs: 200, maxDelayMs: 5_000 },
    closeTimeoutMs: options.closeTimeoutMs ?? 10_000,
    recordsOf: (topic, partition) => topics.get(topic)?.[partition] ?? [],
    async commit(member, assignment, offset) {
      const key = offsetKeyOf(assignment.topic, assignment.partition);
      // A member that lost the partition in a rebalance must not move the new owner's position.
      if (member.assignments.get(key) !== assignment) return;
      const group = groups.get(member.options.groupId)!;
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
      let group = groups.get(subscribeOptions.groupId);
      if (group === undefined) groups.set(subscribeOptions.groupId, group = { members: [], committed: new Map() });
      group.members.push(member);
      rebalance(group);
      member.start();
      return { ready: Promise.resolve(), close: () => member.close() };
    },
    async ping() {
      await open("ping");
    },
    async close() {
      if (closed) return;
      closed = true;
      await opened.catch(() => {});
      const members = [...groups.values()].flatMap((group) => group.members);
      await Promise.allSettled(members.map((member) => member.close()));
      await writes;
    },
  };
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
