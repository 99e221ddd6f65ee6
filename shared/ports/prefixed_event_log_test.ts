import assert from "node:assert/strict";
import { createMemoryEventLog } from "../adapters/memory/mod.ts";
import type { IncomingRecord } from "./event_log.ts";
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
