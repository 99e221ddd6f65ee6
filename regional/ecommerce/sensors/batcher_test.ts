import assert from "node:assert/strict";
import { createBatcher } from "./batcher.ts";

Deno.test("a single feeder's item is flushed at once, without lingering", async () => {
  const flushed: number[][] = [];
  const batcher = createBatcher<number>({
    batchMax: 10,
    lingerMs: 60_000,
    flush: (items) => {
      flushed.push([...items]);
      return Promise.resolve();
    },
  });
  await batcher.add(1);
  await batcher.add(2);
  assert.deepEqual(flushed, [[1], [2]]);
});

Deno.test("items from several feeders leave together once every feeder waits, in arrival order", async () => {
  const flushed: number[][] = [];
  const batcher = createBatcher<number>({
    batchMax: 10,
    lingerMs: 60_000,
    feeders: 3,
    flush: (items) => {
      flushed.push([...items]);
      return Promise.resolve();
    },
  });
  await Promise.all([batcher.add(1), batcher.add(2), batcher.add(3)]);
  assert.deepEqual(flushed, [[1, 2, 3]]);
});

Deno.test("a batch leaves when full, and a partial batch leaves after lingering", async () => {
  const flushed: number[][] = [];
  const batcher = createBatcher<number>({
    batchMax: 2,
    lingerMs: 20,
    feeders: 100,
    flush: (items) => {
      flushed.push([...items]);
      return Promise.resolve();
    },
  });
  const started = Date.now();
  await Promise.all([batcher.add(1), batcher.add(2), batcher.add(3)]);
  assert.deepEqual(flushed, [[1, 2], [3]]);
  assert.ok(Date.now() - started >= 15, "the partial batch waited for company");
  await batcher.drain();
});

Deno.test("one flush runs at a time and a failed flush rejects exactly its own items", async () => {
  let running = 0;
  let fail = true;
  const batcher = createBatcher<number>({
    batchMax: 1,
    lingerMs: 0,
    feeders: 4,
    flush: async () => {
      running++;
      assert.equal(running, 1, "flushes never overlap");
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      if (fail) {
        fail = false;
        throw new Error("broker down");
      }
    },
  });
  const results = await Promise.allSettled([batcher.add(1), batcher.add(2), batcher.add(3)]);
  assert.deepEqual(results.map((r) => r.status), ["rejected", "fulfilled", "fulfilled"]);
  await batcher.drain();
});

Deno.test("the batcher refuses items past its bound instead of buffering without limit", async () => {
  const batcher = createBatcher<number>({
    batchMax: 1,
    lingerMs: 0,
    pendingMax: 1,
    feeders: 10,
    flush: () => new Promise((resolve) => setTimeout(resolve, 20)),
  });
  const first = batcher.add(1);
  const second = batcher.add(2);
  await assert.rejects(batcher.add(3), /more than 1 waiting/);
  await Promise.all([first, second]);
  assert.throws(() => createBatcher({ batchMax: 0, lingerMs: 0, flush: () => Promise.resolve() }), RangeError);
});

Deno.test("a flush that reports per item settles each caller with its own item's outcome", async () => {
  const batcher = createBatcher<string>({
    batchMax: 3,
    lingerMs: 1_000,
    feeders: 3,
    flush: (items) => Promise.resolve(items.map((item) => item === "dlq" ? new Error("dlq topic down") : undefined)),
  });
  const results = await Promise.allSettled([batcher.add("a"), batcher.add("dlq"), batcher.add("b")]);
  assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
});
