import assert from "node:assert/strict";
import type { StoredRecord } from "./_event_log_store.ts";
import { Partition, type RetentionPolicy, sizeOf } from "./_partition.ts";

const NO_AGE_LIMIT_MS = Number.MAX_SAFE_INTEGER;

/** A seeded generator (mulberry32), so a failing run can be replayed from its seed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function recordsFrom(offset: number, count: number, timestampMs: number, valueChars = 10): StoredRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    offset: offset + i,
    key: `k${offset + i}`,
    value: "v".repeat(valueChars),
    headers: { h: "1" },
    timestampMs,
  }));
}

/** Appends `batch` the way the event log does: retention computed with the batch, then applied. */
function publish(partition: Partition, policy: RetentionPolicy, nowMs: number, batch: StoredRecord[]): void {
  const logStart = partition.retainedStart(policy, nowMs, batch);
  partition.append(batch);
  partition.dropBefore(logStart);
}

Deno.test("[memory] partition never holds more than retention.records under random bursts, offsets unbroken", () => {
  const random = seeded(20_261_122);
  const policy: RetentionPolicy = { ms: NO_AGE_LIMIT_MS, records: 500, bytes: Number.MAX_SAFE_INTEGER };
  const partition = new Partition();
  let published = 0;
  while (published < 50_000) {
    // Mostly small batches, sometimes one larger than the bound itself.
    const size = random() < 0.05 ? 700 : 1 + Math.floor(random() * 40);
    publish(partition, policy, 0, recordsFrom(partition.end, size, 0));
    published += size;
    assert.ok(partition.count <= policy.records, `held ${partition.count} records after ${published}`);
  }
  assert.equal(partition.end, published, "every record got the next offset");
  assert.equal(partition.count, policy.records);
  assert.equal(partition.logStart, published - policy.records);
  const offsets = [...partition.records()].map((record) => record.offset);
  assert.deepEqual(offsets, Array.from({ length: policy.records }, (_, i) => published - policy.records + i));
  assert.equal(partition.at(partition.logStart - 1), undefined, "a dropped offset is gone");
  assert.equal(partition.at(partition.logStart)?.offset, partition.logStart);
});

Deno.test("[memory] partition keeps its size under retention.bytes and counts bytes back down as it drops", () => {
  const policy: RetentionPolicy = { ms: NO_AGE_LIMIT_MS, records: Number.MAX_SAFE_INTEGER, bytes: 10_000 };
  const partition = new Partition();
  for (let i = 0; i < 2_000; i++) {
    publish(partition, policy, 0, recordsFrom(partition.end, 1, 0, 1 + (i % 97)));
    assert.ok(partition.bytes <= policy.bytes, `held ${partition.bytes} bytes`);
  }
  const actual = [...partition.records()].reduce((sum, record) => sum + sizeOf(record), 0);
  assert.equal(partition.bytes, actual);
  assert.ok(partition.count > 0 && partition.count < 2_000);
});

Deno.test("[memory] partition drops records older than retention.ms and keeps its log start when empty", () => {
  const policy: RetentionPolicy = { ms: 1_000, records: 100, bytes: 100_000 };
  const partition = new Partition();
  publish(partition, policy, 0, recordsFrom(0, 3, 0));
  publish(partition, policy, 600, recordsFrom(3, 2, 600));
  assert.equal(partition.retainedStart(policy, 1_000), 0, "exactly retention.ms old is still kept");
  assert.equal(partition.retainedStart(policy, 1_001), 3);
  partition.dropBefore(partition.retainedStart(policy, 1_601));
  assert.equal(partition.count, 0);
  assert.equal(partition.logStart, 5);
  assert.equal(partition.end, 5, "the next record still gets offset 5");
});
