/**
 * `subscribeBatches` on the real east cluster: batches keep partition order and commit once handled, a
 * failing batch comes back whole, and one that keeps failing is dead-lettered record by record.
 */
import assert from "node:assert/strict";
import { DLQ_HEADERS, dlqTopicOf, type EventLog, RetryLaterError } from "../../ports/event_log.ts";
import { uniqueName } from "../../testing/unique.ts";
import { readDeadLetters } from "../../testing/dead_letters.ts";
import { deleteTopics, testKafkaLog } from "./_fixture_for_test.ts";

async function withTopic(run: (log: EventLog, topic: string) => Promise<void>): Promise<void> {
  const topic = uniqueName("bv_test_batches");
  const log = testKafkaLog({ initialDelayMs: 20, maxDelayMs: 50 });
  try {
    await log.ensureTopics([{ name: topic, partitions: 1 }, { name: dlqTopicOf(topic), partitions: 1 }]);
    await run(log, topic);
  } finally {
    await log.close();
    await deleteTopics([topic, dlqTopicOf(topic)]);
  }
}

async function eventually(what: string, probe: () => boolean, timeoutMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!probe()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Joins `groupId` again (it has committed offsets) and collects the values it is handed, in order. */
async function rejoin(log: EventLog, groupId: string, topic: string) {
  const values: string[] = [];
  const subscription = await log.subscribeBatches!({
    groupId,
    topics: [topic],
    from: "earliest",
    handler: (batch) => Promise.resolve(void values.push(...batch.map((r) => r.value))),
  });
  await subscription.ready;
  return { values, close: () => subscription.close() };
}

const records = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ key: "k", value: `${tag}-${i}` }));

Deno.test("[kafka] subscribeBatches hands over records in partition order, at most batchMax at a time, and commits them", async () => {
  await withTopic(async (log, topic) => {
    const groupId = uniqueName("bv_test_group");
    const seen: string[] = [];
    const sizes: number[] = [];
    await log.publish(topic, records(25, "a"));
    const first = await log.subscribeBatches!({
      groupId,
      topics: [topic],
      from: "earliest",
      batchMax: 10,
      handler: (batch) => {
        sizes.push(batch.length);
        seen.push(...batch.map((r) => r.value));
        return Promise.resolve();
      },
    });
    await first.ready;
    await eventually("25 records", () => seen.length === 25);
    assert.deepEqual(seen, records(25, "a").map((r) => r.value));
    // All 25 were on the broker before the member joined, so they arrive in chunks, not one by one.
    assert.ok(sizes.every((size) => size >= 1 && size <= 10), `batch sizes ${sizes}`);
    assert.ok(sizes.some((size) => size > 1), `batch sizes ${sizes}`);
    await first.close();

    // The same group again: nothing handled before comes back, only what was published since.
    // In offset order: anything handed over again would come before b-0.
    await log.publish(topic, records(3, "b"));
    const again = await rejoin(log, groupId, topic);
    await eventually("the 3 new records", () => again.values.length >= 3);
    assert.deepEqual(again.values.slice(0, 3), ["b-0", "b-1", "b-2"]);
    await again.close();
  });
});

Deno.test("[kafka] close() waits for the batch in flight, commits it, and leaves the rest to the group", async () => {
  await withTopic(async (log, topic) => {
    const groupId = uniqueName("bv_test_group");
    await log.publish(topic, records(25, "a"));
    const events: string[] = [];
    let firstBatch: string[] = [];
    const entered = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    const first = await log.subscribeBatches!({
      groupId,
      topics: [topic],
      from: "earliest",
      batchMax: 10,
      handler: async (batch) => {
        if (firstBatch.length > 0) return;
        firstBatch = batch.map((r) => r.value);
        entered.resolve();
        await release.promise;
        events.push("handler finished");
      },
    });
    await entered.promise;
    const closed = first.close().then(() => events.push("closed"));
    // Well under closeTimeoutMs (1 s): a close that did not wait would be done by then.
    await new Promise((resolve) => setTimeout(resolve, 200));
    release.resolve();
    await closed;
    assert.deepEqual(events, ["handler finished", "closed"]);

    // The batch in flight was committed; nothing after it was, so the group resumes right after it.
    const again = await rejoin(log, groupId, topic);
    const rest = records(25, "a").map((r) => r.value).slice(firstBatch.length);
    await eventually(`${rest.length} records`, () => again.values.length >= rest.length);
    assert.deepEqual(firstBatch, records(25, "a").map((r) => r.value).slice(0, firstBatch.length));
    assert.deepEqual(again.values.slice(0, rest.length), rest);
    await again.close();
  });
});

Deno.test("[kafka] a failing batch is delivered again whole; one that keeps failing is dead-lettered record by record", async () => {
  await withTopic(async (log, topic) => {
    const deliveries: string[][] = [];
    const subscription = await log.subscribeBatches!({
      groupId: uniqueName("bv_test_group"),
      topics: [topic],
      from: "earliest",
      maxAttempts: 3,
      handler: (batch) => {
        deliveries.push(batch.map((r) => r.value));
        return Promise.reject(new Error("database down"));
      },
    });
    await subscription.ready;
    const { records: dead, close: closeDlq } = await readDeadLetters(log, topic);
    await log.publish(topic, records(2, "x"));
    await eventually("2 dead letters", () => dead.length === 2);
    assert.ok(deliveries.length >= 3, `${deliveries.length} deliveries`);
    // Every attempt saw the same records, in order.
    const firstAttempt = deliveries[0];
    assert.deepEqual(deliveries.slice(0, 3), [firstAttempt, firstAttempt, firstAttempt]);
    assert.deepEqual(dead.map((r) => r.value), ["x-0", "x-1"]);
    assert.equal(dead[0].headers[DLQ_HEADERS.attempts], "3");
    assert.match(dead[0].headers[DLQ_HEADERS.error], /database down/);
    await closeDlq();
    await subscription.close();
  });
});

Deno.test("[kafka] a batch whose handler throws RetryLaterError is retried past maxAttempts and never dead-lettered", async () => {
  await withTopic(async (log, topic) => {
    const deliveries: string[][] = [];
    const { records: dead, close: closeDlq } = await readDeadLetters(log, topic);
    const groupId = uniqueName("bv_test_group");
    const subscription = await log.subscribeBatches!({
      groupId,
      topics: [topic],
      from: "earliest",
      maxAttempts: 2,
      handler: (batch) => {
        deliveries.push(batch.map((r) => r.value));
        // The database is down for the first 5 deliveries (more than maxAttempts), then back.
        if (deliveries.length <= 5) return Promise.reject(new RetryLaterError("database down"));
        return Promise.resolve();
      },
    });
    await subscription.ready;
    await log.publish(topic, records(2, "y"));
    await eventually("the 6th delivery", () => deliveries.length >= 6);
    // Enough for a dead letter to have arrived, had one been published.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.deepEqual(dead, []);
    assert.deepEqual(deliveries.flat().slice(-2), ["y-0", "y-1"]);
    await subscription.close();
    await closeDlq();
    // Committed once applied: the group resumes after them.
    await log.publish(topic, [{ key: "k", value: "marker" }]);
    const again = await rejoin(log, groupId, topic);
    await eventually("the marker", () => again.values.length >= 1);
    assert.deepEqual(again.values, ["marker"]);
    await again.close();
  });
});

Deno.test("[kafka] a batch window turns a trickle of records into a few batches; without one each record is its own", async () => {
  await withTopic(async (log, topic) => {
    /** Publishes 8 records 25 ms apart to a fresh group and returns the sizes of the batches it was handed. */
    const trickle = async (batchWindowMs: number, tag: string): Promise<number[]> => {
      const sizes: number[] = [];
      const member = await log.subscribeBatches!({
        groupId: uniqueName("bv_test_group"),
        topics: [topic],
        batchWindowMs,
        handler: (batch) => Promise.resolve(void sizes.push(batch.length)),
      });
      try {
        await member.ready;
        for (const record of records(8, tag)) {
          await log.publish(topic, [record]);
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        await eventually(`8 records (window ${batchWindowMs} ms)`, () => sizes.reduce((a, b) => a + b, 0) >= 8);
        return sizes;
      } finally {
        await member.close();
      }
    };
    const unwindowed = await trickle(0, "a");
    const windowed = await trickle(600, "b");
    // Records 25 ms apart span ~200 ms: one or two 600 ms windows. Without a window each fetch is answered
    // as soon as a record lands; a busy machine may still merge a few.
    assert.ok(windowed.length <= 2, `windowed batch sizes ${windowed}`);
    assert.ok(unwindowed.length >= 5, `unwindowed batch sizes ${unwindowed}`);
  });
});
