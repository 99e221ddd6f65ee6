/**
 * The event-log contract on the embedded adapter, in memory and backed by a data directory, plus what only
 * the embedded adapter promises: persistence across a restart and Kafka's key-to-partition hash.
 */
import assert from "node:assert/strict";
import { collectInto, eventLogContract, waitFor } from "../../ports/contract/event_log_contract.ts";
import type { IncomingRecord } from "../../ports/event_log.ts";
import { uniqueName } from "../../testing/unique.ts";
import { createMemoryEventLog } from "./event_log.ts";
import { murmur2, partitionOfKey } from "./_murmur2.ts";

/** Short waits for tests, and warnings (expected ones: the contract makes handlers fail) kept quiet. */
const FAST = {
  closeTimeoutMs: 300,
  handlerRetry: { initialDelayMs: 10, maxDelayMs: 50 },
  warn: () => {},
} as const;

eventLogContract("memory", () =>
  Promise.resolve({
    log: createMemoryEventLog(FAST),
    newTopic: (name: string) => uniqueName(`bv_test_${name}`),
    cleanup: () => Promise.resolve(),
  }));

eventLogContract("memory+disk", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "bv_event_log_" });
  const log = createMemoryEventLog({ ...FAST, dataDir });
  let current = log;
  return {
    log,
    newTopic: (name: string) => uniqueName(`bv_test_${name}`),
    reopen: async () => {
      await current.close();
      current = createMemoryEventLog({ ...FAST, dataDir });
      return current;
    },
    cleanup: async () => {
      await log.close();
      await current.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
});

Deno.test("[memory] event log keeps records and committed offsets across close and reopen (dataDir)", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "bv_event_log_" });
  try {
    const topic = "orders.placed";
    const groupId = "billing";
    const first = createMemoryEventLog({ ...FAST, dataDir });
    await first.ensureTopics([{ name: topic, partitions: 4 }]);
    await first.publish(topic, [
      { key: "order-1", value: "placed-1", headers: { "x-bv-event-type": "OrderPlaced" } },
      { key: "order-2", value: "placed-2" },
      { key: "order-1", value: "paid-1" },
    ]);
    const handled: string[] = [];
    const subscription = await first.subscribe({
      groupId,
      topics: [topic],
      from: "earliest",
      handler: collectInto(handled, (record) => record.value),
    });
    await waitFor("the first process to handle three records", () => handled.length >= 3, { timeoutMs: 5_000 });
    await subscription.close();
    await first.close();

    const second = createMemoryEventLog({ ...FAST, dataDir });
    try {
      await second.publish(topic, [{ key: "order-2", value: "paid-2" }]);
      // The same group resumes after its committed offsets: only the new record.
      const resumed: string[] = [];
      await second.subscribe({
        groupId,
        topics: [topic],
        from: "earliest",
        handler: collectInto(resumed, (record) => record.value),
      });
      // A new group reads everything, with the partitions, offsets and headers from before the restart.
      const replayed: IncomingRecord[] = [];
      await second.subscribe({
        groupId: "audit",
        topics: [topic],
        from: "earliest",
        handler: collectInto(replayed, (record) => record),
      });
      await waitFor("both groups after the restart", () => resumed.length >= 1 && replayed.length >= 4, {
        timeoutMs: 5_000,
      });
      assert.deepEqual(resumed, ["paid-2"]);
      const placed1 = replayed.find((record) => record.value === "placed-1");
      assert.deepEqual(placed1?.headers, { "x-bv-event-type": "OrderPlaced" });
      assert.equal(placed1?.partition, partitionOfKey("order-1", 4), "the topic kept its 4 partitions");
      const order1 = replayed.filter((record) => record.key === "order-1");
      assert.deepEqual(order1.map((record) => [record.value, record.offset]), [["placed-1", "0"], ["paid-1", "1"]]);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("[memory] event log drops a torn last line left by a crash and keeps appending cleanly", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "bv_event_log_" });
  try {
    const first = createMemoryEventLog({ ...FAST, dataDir });
    await first.ensureTopics([{ name: "t", partitions: 1 }]);
    await first.publish("t", [{ key: "k", value: "kept" }]);
    await first.close();
    await Deno.writeTextFile(`${dataDir}/topics/t/0.jsonl`, '{"o":1,"k":"k","v":"to', { append: true });

    const second = createMemoryEventLog({ ...FAST, dataDir });
    try {
      await second.publish("t", [{ key: "k", value: "next" }]);
      const seen: string[] = [];
      await second.subscribe({
        groupId: "g",
        topics: ["t"],
        from: "earliest",
        handler: collectInto(seen, (record) => `${record.offset}:${record.value}`),
      });
      await waitFor("both records", () => seen.length >= 2, { timeoutMs: 5_000 });
      assert.deepEqual(seen, ["0:kept", "1:next"]);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("[memory] event log puts a key in the partition Kafka's default partitioner would", () => {
  // Reference hashes from kafkajs's murmur2 (the Java client's), which decides partitions on a real cluster.
  const reference: [key: string, murmur2: number, of3: number, of12: number][] = [
    ["order-1", 1221710326, 1, 10],
    ["customer-42", -542987495, 0, 9],
    ["ünï", -570454509, 2, 11],
    ["", 275646681, 0, 9],
    ["a", -1563381124, 1, 4],
    ["abcdefg", -346467175, 1, 1],
  ];
  for (const [key, hash, of3, of12] of reference) {
    assert.equal(murmur2(new TextEncoder().encode(key)), hash, `murmur2 of "${key}"`);
    assert.equal(partitionOfKey(key, 3), of3);
    assert.equal(partitionOfKey(key, 12), of12);
  }
});

Deno.test("[memory] event log hands a partition to a new member only after the old member's handler settled", async () => {
  const log = createMemoryEventLog(FAST);
  try {
    const topic = uniqueName("bv_test_handover");
    await log.ensureTopics([{ name: topic, partitions: 2 }]);
    // The second member of a group gets partition 1 (partitions are dealt in join order).
    let key = "k0";
    for (let i = 0; partitionOfKey(key, 2) !== 1; i++) key = `k${i}`;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    const seen: string[] = [];
    const inHandler = { now: 0, most: 0 };
    const handlerOf = (member: string) => async (record: IncomingRecord) => {
      inHandler.now++;
      inHandler.most = Math.max(inHandler.most, inHandler.now);
      seen.push(`${member}:${record.value}`);
      if (record.value === "first") await gate;
      inHandler.now--;
    };
    const first = await log.subscribe({ groupId: "g", topics: [topic], from: "earliest", handler: handlerOf("a") });
    await log.publish(topic, [{ key, value: "first" }]);
    await waitFor("member a to hold the first record", () => seen.length === 1, { timeoutMs: 5_000 });
    const second = await log.subscribe({ groupId: "g", topics: [topic], from: "earliest", handler: handlerOf("b") });
    await log.publish(topic, [{ key, value: "second" }]);
    // Member b owns partition 1 now, but member a still runs its record: nothing of it reaches b yet.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(seen, ["a:first"]);
    release();
    await waitFor("member b to take over after the first record", () => seen.length >= 2, { timeoutMs: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    // a's commit counted: b starts after the first record instead of running it a second time.
    assert.deepEqual(seen, ["a:first", "b:second"]);
    assert.equal(inHandler.most, 1, "never two handlers on one partition at once");
    await second.close();
    await first.close();
  } finally {
    await log.close();
  }
});
