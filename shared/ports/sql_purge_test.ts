import assert from "node:assert/strict";
import { deleteInBatches } from "./sql_purge.ts";

/** A fake table of `rows` rows; each call deletes up to `limit` of them and records the limit. */
function tableOf(rows: number) {
  let left = rows;
  const calls: number[] = [];
  return {
    deleteBatch: (limit: number) => {
      calls.push(limit);
      const deleted = Math.min(left, limit);
      left -= deleted;
      return Promise.resolve(deleted);
    },
    left: () => left,
    calls,
  };
}

Deno.test("deleteInBatches() stops at the first short batch", async () => {
  const table = tableOf(12);
  assert.equal(await deleteInBatches(table.deleteBatch, { batch: 5, statementsMax: 10 }), 12);
  assert.deepEqual(table.calls, [5, 5, 5]);
  assert.equal(table.left(), 0);
});

Deno.test("deleteInBatches() runs one more statement when the rows are an exact multiple of the batch", async () => {
  const table = tableOf(10);
  assert.equal(await deleteInBatches(table.deleteBatch, { batch: 5, statementsMax: 10 }), 10);
  assert.deepEqual(table.calls, [5, 5, 5]);
});

Deno.test("deleteInBatches() leaves what exceeds statementsMax × batch for the next call", async () => {
  const table = tableOf(23);
  assert.equal(await deleteInBatches(table.deleteBatch, { batch: 5, statementsMax: 3 }), 15);
  assert.equal(table.left(), 8);
  assert.equal(await deleteInBatches(table.deleteBatch, { batch: 5, statementsMax: 3 }), 8);
  assert.equal(table.left(), 0);
});

Deno.test("deleteInBatches() refuses bounds that are not positive whole numbers", async () => {
  const table = tableOf(1);
  for (
    const bounds of [{ batch: 0, statementsMax: 1 }, { batch: 5, statementsMax: 0 }, { batch: 1.5, statementsMax: 2 }]
  ) {
    await assert.rejects(() => deleteInBatches(table.deleteBatch, bounds), RangeError);
  }
  assert.deepEqual(table.calls, []);
});
