import assert from "node:assert/strict";
import { createMemoryEventLog } from "../adapters/memory/mod.ts";
import { remoteTopic } from "../replication/remote_topic.ts";
import type { BatchSubscribeOptions, EventLog, IncomingRecord } from "./event_log.ts";
import { prefixedEventLog } from "./prefixed_event_log.ts";

function collect(into: IncomingRecord[]) {
  return (record: IncomingRecord) => {
    into.push(record);
    return Promise.resolve();
  };
}

Deno.test("prefixed event logs on one cluster do not see each other's records or share groups", async () => {
  const cluster = createMemoryEventLog();
  const a = prefixedEventLog(cluster, "run_a.");
  const b = prefixedEventLog(cluster, "run_b.");
  const seen: Record<string, IncomingRecord[]> = { a: [], b: [], raw: [] };
  const subs = await Promise.all([
    a.subscribe({
      groupId: "g",
      topics: ["t.x.y.z.v1"],
      from: "earliest",
      handler: collect(seen.a),
    }),
    b.subscribe({
      groupId: "g",
      topics: ["t.x.y.z.v1"],
      from: "earliest",
      handler: collect(seen.b),
    }),
    cluster.subscribe({
      groupId: "raw",
      topics: ["run_a.t.x.y.z.v1"],
      from: "earliest",
      handler: collect(seen.raw),
    }),
  ]);
  try {
    await a.publish("t.x.y.z.v1", [{ key: "k", value: "from-a" }]);
    await b.publish("t.x.y.z.v1", [{ key: "k", value: "from-b" }]);
    const started = Date.now();
    while ((seen.a.length < 1 || seen.b.length < 1 || seen.raw.length < 1) && Date.now() - started < 3_000) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(seen.a.map((r) => [r.topic, r.value]), [["t.x.y.z.v1", "from-a"]]);
    assert.deepEqual(seen.b.map((r) => [r.topic, r.value]), [["t.x.y.z.v1", "from-b"]]);
    assert.deepEqual(seen.raw.map((r) => r.value), ["from-a"], "the physical topic carries the prefix");
  } finally {
    await Promise.all(subs.map((s) => s.close()));
    await cluster.close();
  }
});

/** An inner log that records the physical names it is asked for and hands batches to the handler it got. */
function recordingLog() {
  const calls: { ensured: string[]; published: string[]; subscribed: { groupId: string; topics: string[] }[] } = {
    ensured: [],
    published: [],
    subscribed: [],
  };
  let batchHandler: BatchSubscribeOptions["handler"] | undefined;
  const subscription = { ready: Promise.resolve(), close: () => Promise.resolve() };
  const log: EventLog = {
    ensureTopics: (topics) => Promise.resolve(void calls.ensured.push(...topics.map((t) => t.name))),
    publish: (topic) => Promise.resolve(void calls.published.push(topic)),
    subscribe: (options) => {
      calls.subscribed.push({ groupId: options.groupId, topics: [...options.topics] });
      return Promise.resolve(subscription);
    },
    subscribeBatches: (options) => {
      calls.subscribed.push({ groupId: options.groupId, topics: [...options.topics] });
      batchHandler = options.handler;
      return Promise.resolve(subscription);
    },
    ping: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const deliver = (topics: readonly string[]) =>
    batchHandler!(topics.map((topic, offset) => ({
      topic,
      partition: 0,
      offset: String(offset),
      key: "k",
      value: "v",
      headers: {},
      timestampMs: 0,
    })));
  return { log, calls, deliver };
}

Deno.test("a remote topic maps to MirrorMaker's <region>.<prefix><topic> and its records come back under its logical name", async () => {
  const cluster = createMemoryEventLog();
  const west = prefixedEventLog(cluster, "p.");
  const topic = "t.x.y.z.v1";
  const copy = remoteTopic("east", topic);
  const seen: IncomingRecord[] = [];
  const sub = await west.subscribe({ groupId: "g", topics: [topic, copy], from: "earliest", handler: collect(seen) });
  try {
    await sub.ready;
    // MirrorMaker 2 writes east's p.t.x.y.z.v1 into west's cluster as east.p.t.x.y.z.v1.
    await cluster.publish("east.p.t.x.y.z.v1", [{ key: "k", value: "mirrored" }]);
    await west.publish(topic, [{ key: "k", value: "local" }]);
    // An ordinary topic that merely starts with a region name is a prefixed topic of this namespace.
    await west.publish("east.t.x.y.z.v1", [{ key: "k", value: "ordinary" }]);
    const started = Date.now();
    while (seen.length < 2 && Date.now() - started < 3_000) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen.map((r) => [r.topic, r.value]).sort(), [["east:t.x.y.z.v1", "mirrored"], [topic, "local"]]);
  } finally {
    await sub.close();
    await cluster.close();
  }
});

Deno.test("prefixedEventLog() names remote topics physically in every call, with or without a prefix", async () => {
  for (const [prefix, copy, ordinary] of [["p.", "east.p.t.v1", "p.east.t.v1"], ["", "east.t.v1", "east.t.v1"]]) {
    const inner = recordingLog();
    const log = prefixedEventLog(inner.log, prefix);
    await log.ensureTopics([{ name: "t.v1" }, { name: remoteTopic("east", "t.v1") }]);
    await log.publish(remoteTopic("east", "t.v1"), []);
    await log.publish("east.t.v1", []);
    const batches: string[][] = [];
    await log.subscribeBatches!({
      groupId: "g",
      topics: ["t.v1", remoteTopic("east", "t.v1")],
      handler: (records) => Promise.resolve(void batches.push(records.map((r) => r.topic))),
    });
    await inner.deliver([copy, `${prefix}t.v1`]);
    assert.deepEqual(inner.calls.ensured, [`${prefix}t.v1`, copy], `prefix "${prefix}"`);
    assert.deepEqual(inner.calls.published, [copy, ordinary], `prefix "${prefix}"`);
    assert.deepEqual(inner.calls.subscribed, [{ groupId: `${prefix}g`, topics: [`${prefix}t.v1`, copy] }]);
    assert.deepEqual(batches, [["east:t.v1", "t.v1"]], `prefix "${prefix}"`);
  }
});
