/**
 * Where a `from: "latest"` group starts, on the real east cluster: committed for every partition a member is
 * given by the time `ready` resolves, never over an offset already committed, also when members join together,
 * and for batch members (`_start_positions.ts`). The shared contract checks the restart as a user sees it.
 */
import assert from "node:assert/strict";
import type { EventLog, IncomingRecord } from "../../ports/event_log.ts";
import { collectInto, waitFor } from "../../ports/contract/event_log_contract.ts";
import { uniqueName } from "../../testing/unique.ts";
import { deleteTopics, testKafkaLog, withTestAdmin } from "./_fixture_for_test.ts";

const WAIT_MS = 20_000;

async function withTopic(run: (log: EventLog, topic: string, groupId: string) => Promise<void>): Promise<void> {
  const topic = uniqueName("bv_test_start");
  const log = testKafkaLog({ initialDelayMs: 20, maxDelayMs: 50 });
  try {
    await log.ensureTopics([{ name: topic, partitions: 3 }]);
    await run(log, topic, uniqueName("bv_test_start_group"));
  } finally {
    await log.close();
    await deleteTopics([topic]);
  }
}

/** The group's committed offset and the log end of each partition, read with an admin client of the test's own. */
async function positions(groupId: string, topic: string): Promise<{ committed: string[]; ends: string[] }> {
  return await withTestAdmin("bv-test-start-positions", async (admin) => {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const byPartition = (entries: { partition: number; offset: string }[]) =>
      [...entries].sort((a, b) => a.partition - b.partition).map((entry) => entry.offset);
    return { committed: byPartition(offsets.partitions), ends: byPartition(await admin.fetchTopicOffsets(topic)) };
  });
}

/** Twelve records whose keys hash to all 3 partitions. */
const spread = (tag: string) => Array.from({ length: 12 }, (_, i) => ({ key: `${tag}-${i}`, value: `${tag}-${i}` }));

Deno.test("[kafka] a from: latest member has committed a start on each of its partitions when ready resolves, and leaves committed offsets alone", async () => {
  await withTopic(async (log, topic, groupId) => {
    await log.publish(topic, spread("old"));
    const handled: IncomingRecord[] = [];
    const first = await log.subscribe({
      groupId,
      topics: [topic],
      from: "latest",
      handler: collectInto(handled, (record) => record),
    });
    await first.ready;
    const atReady = await positions(groupId, topic);
    assert.deepEqual(atReady.committed, atReady.ends, "each partition starts at its end, committed");

    // A handled record commits past the start on its partition; the next member's join must keep that.
    await log.publish(topic, [{ key: "new", value: "new" }]);
    await waitFor("the new record", () => handled.length >= 1, { timeoutMs: WAIT_MS });
    await first.close();
    const afterHandled = await positions(groupId, topic);
    const partition = handled[0].partition;
    assert.equal(afterHandled.committed[partition], String(BigInt(handled[0].offset) + 1n));

    const second = await log.subscribe({ groupId, topics: [topic], from: "latest", handler: () => Promise.resolve() });
    await second.ready;
    assert.deepEqual((await positions(groupId, topic)).committed, afterHandled.committed);
    await second.close();
  });
});

Deno.test("[kafka] members of a from: latest group that join together leave every partition's start committed", async () => {
  await withTopic(async (log, topic, groupId) => {
    const members = await Promise.all(
      [0, 1].map(() => log.subscribe({ groupId, topics: [topic], from: "latest", handler: () => Promise.resolve() })),
    );
    await Promise.all(members.map((member) => member.ready));
    await Promise.all(members.map((member) => member.close()));

    await log.publish(topic, spread("while-down"));
    const received: IncomingRecord[] = [];
    const next = await log.subscribe({
      groupId,
      topics: [topic],
      from: "latest",
      handler: collectInto(received, (record) => record),
    });
    await next.ready;
    await waitFor("every record published while the group was down", () => received.length >= 12, {
      timeoutMs: WAIT_MS,
    });
    assert.deepEqual(received.map((record) => record.value).sort(), spread("while-down").map((r) => r.value).sort());
    await next.close();
  });
});

Deno.test("[kafka] subscribeBatches from: latest keeps the group's position while its only member is down", async () => {
  await withTopic(async (log, topic, groupId) => {
    const first = await log.subscribeBatches!({
      groupId,
      topics: [topic],
      from: "latest",
      handler: () => Promise.resolve(),
    });
    await first.ready;
    await first.close();

    await log.publish(topic, spread("while-down"));
    const received: string[] = [];
    const next = await log.subscribeBatches!({
      groupId,
      topics: [topic],
      from: "latest",
      handler: (batch) => Promise.resolve(void received.push(...batch.map((record) => record.value))),
    });
    await next.ready;
    await waitFor("every record published while the group was down", () => received.length >= 12, {
      timeoutMs: WAIT_MS,
    });
    assert.deepEqual([...received].sort(), spread("while-down").map((r) => r.value).sort());
    await next.close();
  });
});
