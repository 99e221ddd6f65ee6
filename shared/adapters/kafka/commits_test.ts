/**
 * The coalesced offset committer against a recording stand-in for kafkajs's `commitOffsets` (the real
 * broker path is covered by `event_log_test.ts` and `batch_member_test.ts`, which run with it).
 */
import assert from "node:assert/strict";
import type { Consumer } from "kafkajs";
import { createOffsetCommitter } from "./_commits.ts";
import type { KafkaLogEntry } from "./_logging.ts";

type Offsets = { topic: string; partition: number; offset: string }[];

function recordingConsumer(fail = false) {
  const commits: Offsets[] = [];
  const consumer = {
    commitOffsets: (offsets: Offsets) => {
      commits.push(offsets);
      return fail ? Promise.reject(new Error("The group is rebalancing")) : Promise.resolve();
    },
  } as unknown as Consumer;
  return { consumer, commits };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("createOffsetCommitter() sends many marks as one commit of each partition's newest offset", async () => {
  const { consumer, commits } = recordingConsumer();
  const committer = createOffsetCommitter(consumer, "g", 30, () => {});
  await committer.mark("t", 0, "1");
  await committer.mark("t", 1, "7");
  await committer.mark("t", 0, "2");
  assert.equal(commits.length, 0, "nothing is sent before the interval");
  await sleep(80);
  assert.deepEqual(commits, [[{ topic: "t", partition: 0, offset: "2" }, { topic: "t", partition: 1, offset: "7" }]]);
  await committer.close();
  assert.equal(commits.length, 1, "close sends nothing when nothing new was marked");
});

Deno.test("createOffsetCommitter() close() sends what is marked at once, and later marks are sent at once", async () => {
  const { consumer, commits } = recordingConsumer();
  const committer = createOffsetCommitter(consumer, "g", 60_000, () => {});
  await committer.mark("t", 2, "10");
  await committer.close();
  assert.deepEqual(commits, [[{ topic: "t", partition: 2, offset: "10" }]]);
  await committer.mark("t", 2, "11");
  assert.deepEqual(commits[1], [{ topic: "t", partition: 2, offset: "11" }]);
});

Deno.test("createOffsetCommitter() with interval 0 commits every mark before it resolves, and reports failures", async () => {
  const ok = recordingConsumer();
  const committer = createOffsetCommitter(ok.consumer, "g", 0, () => {});
  await committer.mark("t", 0, "1");
  await committer.mark("t", 0, "2");
  assert.deepEqual(ok.commits, [[{ topic: "t", partition: 0, offset: "1" }], [{
    topic: "t",
    partition: 0,
    offset: "2",
  }]]);
  const failing = recordingConsumer(true);
  await assert.rejects(createOffsetCommitter(failing.consumer, "g", 0, () => {}).mark("t", 0, "1"), /rebalancing/);
});

Deno.test("createOffsetCommitter() logs a failed coalesced commit instead of throwing", async () => {
  const { consumer, commits } = recordingConsumer(true);
  const logged: KafkaLogEntry[] = [];
  const committer = createOffsetCommitter(consumer, "orders", 60_000, (entry) => logged.push(entry));
  await committer.mark("t", 0, "5");
  await committer.flush();
  assert.equal(commits.length, 1);
  assert.equal(logged.length, 1);
  assert.equal(logged[0].level, "warn");
  assert.match(String(logged[0].error), /rebalancing/);
  assert.equal(logged[0].groupId, "orders");
});

Deno.test("createOffsetCommitter() refuses a negative interval", () => {
  assert.throws(() => createOffsetCommitter(recordingConsumer().consumer, "g", -1, () => {}), RangeError);
});

Deno.test("createOffsetCommitter() start() commits at once, after the commits queued before it", async () => {
  const { consumer, commits } = recordingConsumer();
  const committer = createOffsetCommitter(consumer, "g", 60_000, () => {});
  await committer.mark("t", 0, "4");
  const flushed = committer.flush();
  const sent = await committer.start(
    [{ topic: "t", partition: 1, offset: "9" }, { topic: "t", partition: 2, offset: "3" }],
    () => true,
  );
  await flushed;
  assert.equal(sent, true);
  assert.deepEqual(commits, [
    [{ topic: "t", partition: 0, offset: "4" }],
    [{ topic: "t", partition: 1, offset: "9" }, { topic: "t", partition: 2, offset: "3" }],
  ]);
});

Deno.test("createOffsetCommitter() start() never moves back a partition whose handled records' commit landed", async () => {
  const { consumer, commits } = recordingConsumer();
  const committer = createOffsetCommitter(consumer, "g", 0, () => {});
  await committer.mark("t", 0, "12");
  await committer.start(
    [{ topic: "t", partition: 0, offset: "10" }, { topic: "t", partition: 1, offset: "10" }],
    () => true,
  );
  assert.deepEqual(commits, [
    [{ topic: "t", partition: 0, offset: "12" }],
    [{ topic: "t", partition: 1, offset: "10" }],
  ]);
  // A start whose every partition has a landed commit sends nothing.
  await committer.start([{ topic: "t", partition: 0, offset: "10" }], () => true);
  assert.equal(commits.length, 2);
});

Deno.test("createOffsetCommitter() start() rejects when its commit fails", async () => {
  const { consumer } = recordingConsumer(true);
  const committer = createOffsetCommitter(consumer, "g", 60_000, () => {});
  await assert.rejects(committer.start([{ topic: "t", partition: 0, offset: "1" }], () => true), /rebalancing/);
});

Deno.test("createOffsetCommitter() start() sends nothing once its join is no longer current when its turn comes", async () => {
  const { consumer, commits } = recordingConsumer();
  const committer = createOffsetCommitter(consumer, "g", 60_000, () => {});
  let current = true;
  await committer.mark("t", 0, "4");
  // The start waits behind the flush; a newer join happens meanwhile (kafkajs would send it under that generation).
  const flushed = committer.flush();
  const started = committer.start([{ topic: "t", partition: 1, offset: "9" }], () => current);
  current = false;
  await flushed;
  assert.equal(await started, false);
  assert.deepEqual(commits, [[{ topic: "t", partition: 0, offset: "4" }]]);
});
