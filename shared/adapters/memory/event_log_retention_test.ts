/**
 * Retention of the embedded event log: records dropped by age and by count, offsets kept monotonic across
 * retention and a restart, the partition files compacted, and groups left behind by retention reset the
 * way kafkajs resets them on OFFSET_OUT_OF_RANGE.
 */
import assert from "node:assert/strict";
import { collectInto, waitFor } from "../../ports/contract/event_log_contract.ts";
import type { EventLog } from "../../ports/event_log.ts";
import { createMemoryEventLog, type MemoryEventLogOptions } from "./event_log.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

/** A clock the test moves by hand. */
function fakeClock(startMs = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let nowMs = startMs;
  return { now: () => nowMs, advance: (ms) => nowMs += ms };
}

function fast(extra: MemoryEventLogOptions = {}): MemoryEventLogOptions {
  return { closeTimeoutMs: 300, handlerRetry: { initialDelayMs: 10, maxDelayMs: 50 }, warn: () => {}, ...extra };
}

/**
 * Every record a new `from: "earliest"` group reads from a one-partition topic, as `offset:value`, up to and
 * including the one valued `lastValue`: the test's last publish. Records come in offset order, so once that
 * one is in, everything the log held before it has been delivered, and there is nothing after it.
 */
async function readAll(log: EventLog, topic: string, lastValue: string): Promise<string[]> {
  const seen: string[] = [];
  const subscription = await log.subscribe({
    groupId: `reader-${crypto.randomUUID()}`,
    topics: [topic],
    from: "earliest",
    handler: collectInto(seen, (record) => `${record.offset}:${record.value}`),
  });
  try {
    await waitFor(`the record "${lastValue}"`, () => seen.some((r) => r.endsWith(`:${lastValue}`)), {
      timeoutMs: 5_000,
    });
    return seen;
  } finally {
    await subscription.close();
  }
}

async function withDataDir(body: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "bv_event_log_retention_" });
  try {
    await body(dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("[memory] event log drops records older than 7 days on the next publish; the rest keep their offsets", async () => {
  const clock = fakeClock();
  const log = createMemoryEventLog(fast({ now: clock.now }));
  try {
    await log.ensureTopics([{ name: "t", partitions: 1 }]);
    await log.publish("t", [{ key: "k", value: "a" }, { key: "k", value: "b" }]);
    clock.advance(3 * DAY_MS);
    await log.publish("t", [{ key: "k", value: "c" }]);
    clock.advance(4 * DAY_MS);
    await log.publish("t", [{ key: "k", value: "d" }]);
    assert.deepEqual(await readAll(log, "t", "d"), ["0:a", "1:b", "2:c", "3:d"], "exactly 7 days old is kept");
    clock.advance(1);
    await log.publish("t", [{ key: "k", value: "e" }]);
    assert.deepEqual(await readAll(log, "t", "e"), ["2:c", "3:d", "4:e"]);
  } finally {
    await log.close();
  }
});

Deno.test("[memory] event log applies retention on its timer, and a restart neither reloads nor renumbers (dataDir)", async () => {
  await withDataDir(async (dataDir) => {
    const clock = fakeClock();
    const first = createMemoryEventLog(fast({ dataDir, now: clock.now, retentionCheckIntervalMs: 10 }));
    await first.ensureTopics([{ name: "t", partitions: 1 }]);
    await first.publish("t", [{ key: "k", value: "a" }, { key: "k", value: "b" }, { key: "k", value: "c" }]);
    clock.advance(7 * DAY_MS + 1);
    const file = `${dataDir}/topics/t/0.jsonl`;
    await waitFor(
      "the timer to record the new log start",
      async () => (await Deno.readTextFile(file)).includes('{"s":3}'),
    );
    await first.close();

    // Without the clock moved back: records on disk below the marker must not come back on their own.
    const second = createMemoryEventLog(fast({ dataDir, retention: { ms: 365 * DAY_MS } }));
    try {
      await second.publish("t", [{ key: "k", value: "d" }]);
      assert.deepEqual(await readAll(second, "t", "d"), ["3:d"]);
    } finally {
      await second.close();
    }
  });
});

Deno.test("[memory] event log keeps retention.records per partition through a burst and compacts its file (dataDir)", async () => {
  await withDataDir(async (dataDir) => {
    const first = createMemoryEventLog(fast({ dataDir, retention: { records: 100 } }));
    await first.ensureTopics([{ name: "t", partitions: 1 }]);
    let published = 0;
    while (published < 5_000) {
      const size = published % 1_000 === 0 ? 250 : 7; // Now and then a batch bigger than the bound.
      await first.publish("t", Array.from({ length: size }, (_, i) => ({ key: "k", value: `${published + i}` })));
      published += size;
    }
    const expected = Array.from({ length: 100 }, (_, i) => `${published - 100 + i}:${published - 100 + i}`);
    assert.deepEqual(await readAll(first, "t", `${published - 1}`), expected);
    await first.close();

    const lines = (await Deno.readTextFile(`${dataDir}/topics/t/0.jsonl`)).split("\n").length - 1;
    // Retained records, plus at most ~1,000 garbage lines (dropped records and markers) before a rewrite.
    assert.ok(lines <= 100 + 1_000 + 1, `the partition file holds ${lines} lines for 100 retained records`);

    const second = createMemoryEventLog(fast({ dataDir, retention: { records: 100 } }));
    try {
      await second.publish("t", [{ key: "k", value: "next" }]);
      const after = await readAll(second, "t", "next");
      assert.deepEqual(after, [...expected.slice(1), `${published}:next`], "offsets continue after the restart");
    } finally {
      await second.close();
    }
  });
});

Deno.test("[memory] event log moves a group left below the log start to it, delivering each retained record once", async () => {
  await withDataDir(async (dataDir) => {
    const warnings: Record<string, unknown>[] = [];
    const options = fast({ dataDir, retention: { records: 5 }, warn: (_, fields) => void warnings.push(fields) });
    const first = createMemoryEventLog(options);
    await first.ensureTopics([{ name: "t", partitions: 1 }]);
    const values = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `v${from + i}`);
    await first.publish("t", values(0, 3).map((value) => ({ key: "k", value })));
    const handled: string[] = [];
    const subscribe = (log: EventLog) =>
      log.subscribe({
        groupId: "g",
        topics: ["t"],
        from: "earliest",
        handler: collectInto(handled, (record) => `${record.offset}:${record.value}`),
      });
    const early = await subscribe(first);
    await waitFor("the first three records", () => handled.length >= 3);
    await early.close();
    await first.publish("t", values(3, 13).map((value) => ({ key: "k", value })));

    const late = await subscribe(first);
    // v12 is the last record: delivered in order, so whatever the group was handed before it is in too.
    await waitFor("the last retained record", () => handled.includes("12:v12"));
    await late.close();
    assert.deepEqual(handled, ["0:v0", "1:v1", "2:v2", "8:v8", "9:v9", "10:v10", "11:v11", "12:v12"]);
    assert.deepEqual(warnings.map((w) => [w.groupId, w.position, w.resetTo]), [["g", 3, 8]]);
    await first.close();

    // The reset was committed: after a restart the group resumes after v12, not at the log start again.
    const second = createMemoryEventLog(options);
    try {
      await second.publish("t", [{ key: "k", value: "v13" }]);
      await subscribe(second);
      await waitFor("the new record", () => handled.includes("13:v13"));
      assert.deepEqual(handled.slice(8), ["13:v13"]);
    } finally {
      await second.close();
    }
  });
});

Deno.test("[memory] event log moves a from: latest group left below the log start to the end, as kafkajs does", async () => {
  const resets: Record<string, unknown>[] = [];
  const log = createMemoryEventLog(fast({ retention: { records: 2 }, warn: (_, fields) => void resets.push(fields) }));
  try {
    await log.ensureTopics([{ name: "t", partitions: 1 }]);
    const handled: string[] = [];
    const subscribe = () =>
      log.subscribe({ groupId: "g", topics: ["t"], from: "latest", handler: collectInto(handled, (r) => r.value) });
    const early = await subscribe();
    await log.publish("t", [{ key: "k", value: "a" }]);
    await waitFor("the first record", () => handled.length >= 1);
    await early.close();
    await log.publish("t", ["b", "c", "d"].map((value) => ({ key: "k", value })));
    await subscribe();
    // Only after the reset: "e" published before it would be skipped along with b, c and d.
    await waitFor("the reset", () => resets.length >= 1);
    assert.deepEqual(resets.map((w) => [w.groupId, w.position, w.resetTo]), [["g", 1, 4]]);
    await log.publish("t", [{ key: "k", value: "e" }]);
    // In offset order: b, c or d, had the group been moved to the log start, would come before e.
    await waitFor("the record published after the reset", () => handled.includes("e"));
    assert.deepEqual(handled, ["a", "e"]);
  } finally {
    await log.close();
  }
});

Deno.test("[memory] createMemoryEventLog() refuses a retention bound below 1", () => {
  assert.throws(() => createMemoryEventLog({ retention: { records: 0 } }), /retention.records must be a positive/);
  assert.throws(() => createMemoryEventLog({ retentionCheckIntervalMs: 0 }), RangeError);
});
