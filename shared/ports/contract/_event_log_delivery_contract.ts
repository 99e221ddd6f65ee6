/**
 * @module
 * The delivery part of the event-log contract: per-key order, what a record carries, fan-out to groups,
 * partitions shared within a group, where a new group starts (and that its position then outlasts its members),
 * and the batch window.
 */
import assert from "node:assert/strict";
import type { IncomingRecord } from "../event_log.ts";
import { collectInto, type ContractTest, WAIT_MS_MAX } from "./_event_log_kit.ts";
import { waitFor } from "./_wait_for.ts";

/** Registers the delivery tests through `contractTest`. */
export function deliveryContract(contractTest: ContractTest): void {
  contractTest("keeps order per key across many interleaved keys", async ({ log, newTopic }, subscribe) => {
    const topic = newTopic("order");
    await log.ensureTopics([{ name: topic, partitions: 3 }]);
    const keys = Array.from({ length: 12 }, (_, i) => `customer-${i}`);
    const perKey = 15;
    // Each publish interleaves every key, and the sequence numbers grow across publishes.
    for (let batch = 0; batch < 3; batch++) {
      const records = [];
      for (let n = batch * 5; n < (batch + 1) * 5; n++) {
        for (const key of keys) records.push({ key, value: String(n) });
      }
      await log.publish(topic, records);
    }
    const seen = new Map<string, { values: number[]; partitions: Set<number> }>();
    let total = 0;
    await subscribe({
      groupId: newTopic("order_group"),
      topics: [topic],
      from: "earliest",
      handler: (record) => {
        const entry = seen.get(record.key) ?? { values: [], partitions: new Set() };
        entry.values.push(Number(record.value));
        entry.partitions.add(record.partition);
        seen.set(record.key, entry);
        total++;
        return Promise.resolve();
      },
    });
    await waitFor("every record", () => total >= keys.length * perKey, { timeoutMs: WAIT_MS_MAX });
    const expected = Array.from({ length: perKey }, (_, n) => n);
    for (const key of keys) {
      assert.deepEqual(seen.get(key)?.values, expected, `order of ${key}`);
      assert.equal(seen.get(key)?.partitions.size, 1, `${key} stays in one partition`);
    }
    assert.equal(total, keys.length * perKey);
  });

  contractTest("round-trips keys, values and headers", async ({ log, newTopic }, subscribe) => {
    const topic = newTopic("headers");
    await log.ensureTopics([{ name: topic }]);
    const headers = {
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "x-bv-event-type": "OrderPlaced",
      "x-bv-origin-region": "east",
      note: "ünïcødé ✓",
    };
    const publishedAtMs = Date.now();
    await log.publish(topic, [
      { key: "order-1", value: JSON.stringify({ total: 42 }), headers },
      { key: "order-1", value: "" },
    ]);
    const received: IncomingRecord[] = [];
    await subscribe({
      groupId: newTopic("headers_group"),
      topics: [topic],
      from: "earliest",
      handler: collectInto(received, (record) => record),
    });
    await waitFor("both records", () => received.length >= 2, { timeoutMs: WAIT_MS_MAX });
    const [first, second] = received;
    assert.equal(first.topic, topic);
    assert.equal(first.key, "order-1");
    assert.equal(first.value, JSON.stringify({ total: 42 }));
    assert.deepEqual({ ...first.headers }, headers);
    assert.deepEqual({ ...second.headers }, {});
    assert.equal(second.value, "");
    assert.match(first.offset, /^\d+$/);
    assert.equal(BigInt(second.offset), BigInt(first.offset) + 1n);
    assert.ok(Math.abs(first.timestampMs - publishedAtMs) < 60_000, `timestamp ${first.timestampMs} is recent`);
  });

  contractTest("gives every record to each of two groups", async ({ log, newTopic }, subscribe) => {
    const topic = newTopic("fanout");
    await log.ensureTopics([{ name: topic }]);
    const values = Array.from({ length: 20 }, (_, i) => `event-${i}`);
    await log.publish(topic, values.map((value, i) => ({ key: `key-${i % 7}`, value })));
    const byGroup = [new Set<string>(), new Set<string>()];
    for (const [index, seen] of byGroup.entries()) {
      await subscribe({
        groupId: newTopic(`fanout_group_${index}`),
        topics: [topic],
        from: "earliest",
        handler: (record) => {
          seen.add(record.value);
          return Promise.resolve();
        },
      });
    }
    await waitFor("both groups", () => byGroup.every((seen) => seen.size >= values.length), { timeoutMs: WAIT_MS_MAX });
    for (const seen of byGroup) assert.deepEqual([...seen].sort(), [...values].sort());
  });

  contractTest("shares partitions among the members of one group", async ({ log, newTopic }, subscribe) => {
    const topic = newTopic("share");
    const groupId = newTopic("share_group");
    await log.ensureTopics([{ name: topic, partitions: 3 }]);
    const byMember = [[] as string[], [] as string[]];
    for (const handled of byMember) {
      await subscribe({
        groupId,
        topics: [topic],
        from: "earliest",
        handler: collectInto(handled, (record) => record.value),
      });
    }
    const values = Array.from({ length: 30 }, (_, i) => `event-${i}`);
    await log.publish(topic, values.map((value) => ({ key: value, value })));
    await waitFor("all records", () => byMember[0].length + byMember[1].length >= values.length, {
      timeoutMs: WAIT_MS_MAX,
    });
    const all = [...byMember[0], ...byMember[1]];
    assert.deepEqual([...all].sort(), [...values].sort(), "each record handled exactly once");
    assert.ok(
      byMember.every((handled) => handled.length > 0),
      `both members got work: ${byMember.map((h) => h.length)}`,
    );
  });

  contractTest("starts a new group at the end with from: latest and at the start with earliest", async (
    { log, newTopic },
    subscribe,
  ) => {
    const topic = newTopic("from");
    await log.ensureTopics([{ name: topic }]);
    await log.publish(topic, [{ key: "k", value: "old-1" }, { key: "k", value: "old-2" }]);
    const latest: string[] = [];
    const earliest: string[] = [];
    await subscribe({
      groupId: newTopic("from_latest"),
      topics: [topic],
      from: "latest",
      handler: collectInto(latest, (record) => record.value),
    });
    await subscribe({
      groupId: newTopic("from_earliest"),
      topics: [topic],
      from: "earliest",
      handler: collectInto(earliest, (record) => record.value),
    });
    await log.publish(topic, [{ key: "k", value: "new-1" }]);
    await waitFor("both groups", () => earliest.length >= 3 && latest.length >= 1, { timeoutMs: WAIT_MS_MAX });
    assert.deepEqual(earliest, ["old-1", "old-2", "new-1"]);
    assert.deepEqual(latest, ["new-1"]);
  });

  contractTest("keeps a from: latest group's position on every partition while all its members are down", async (
    { log, newTopic, reopen },
    subscribe,
  ) => {
    const topic = newTopic("latest_down");
    const groupId = newTopic("latest_down_group");
    await log.ensureTopics([{ name: topic, partitions: 3 }]);
    const beforeRestart: string[] = [];
    const first = await subscribe({
      groupId,
      topics: [topic],
      from: "latest",
      handler: collectInto(beforeRestart, (record) => record.value),
    });
    // The only member leaves having handled nothing, so no partition has a commit from a handled record.
    await first.close();
    const restarted = reopen === undefined ? log : await reopen();
    const values = Array.from({ length: 12 }, (_, i) => `while-down-${i}`);
    await restarted.publish(topic, values.map((value) => ({ key: value, value })));
    const afterRestart: IncomingRecord[] = [];
    const second = await restarted.subscribe({
      groupId,
      topics: [topic],
      from: "latest",
      handler: collectInto(afterRestart, (record) => record),
    });
    try {
      await second.ready;
      await waitFor("every record published while the group was down", () => afterRestart.length >= values.length, {
        timeoutMs: WAIT_MS_MAX,
      });
      assert.deepEqual(afterRestart.map((record) => record.value).sort(), [...values].sort());
      assert.equal(new Set(afterRestart.map((record) => record.partition)).size, 3, "the keys cover all 3 partitions");
      assert.deepEqual(beforeRestart, []);
    } finally {
      await second.close();
    }
  });

  contractTest("delivers a trickle of records to a member with a batch window, in order, within the window", async (
    { log, newTopic },
    subscribe,
  ) => {
    const topic = newTopic("window");
    await log.ensureTopics([{ name: topic, partitions: 1 }]);
    const windowMs = 300;
    const arrivals: { value: string; atMs: number }[] = [];
    await subscribe({
      groupId: newTopic("window_group"),
      topics: [topic],
      batchWindowMs: windowMs,
      handler: (record) => {
        arrivals.push({ value: record.value, atMs: performance.now() });
        return Promise.resolve();
      },
    });
    const sentAtMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      await log.publish(topic, [{ key: "k", value: `v${i}` }]);
      sentAtMs.push(performance.now());
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    await waitFor("the windowed member's records", () => arrivals.length >= 5, { timeoutMs: WAIT_MS_MAX });
    assert.deepEqual(arrivals.map((a) => a.value), ["v0", "v1", "v2", "v3", "v4"]);
    // Held at most one window (plus scheduling slack on a busy machine), never lost in it.
    for (const [i, arrival] of arrivals.entries()) assert.ok(arrival.atMs - sentAtMs[i] < windowMs + 700);
  });

  contractTest("rejects a batch window that is not a whole number of ms from 0 to 1,000", async (
    { log, newTopic },
  ) => {
    const topic = newTopic("window_bad");
    await log.ensureTopics([{ name: topic }]);
    const handler = () => Promise.resolve();
    for (const batchWindowMs of [-1, 1.5, 1_001, Number.NaN]) {
      await assert.rejects(
        () => log.subscribe({ groupId: newTopic("window_bad_group"), topics: [topic], batchWindowMs, handler }),
        RangeError,
      );
    }
  });
}
