/**
 * The embedded event log's files when a write fails partway (a full disk): what the failed append wrote is
 * cut back, so the next append follows the last acknowledged line and the next open reads a clean file.
 */
import assert from "node:assert/strict";
import { EventLogStore, type StoredRecord, type StoreFileIo } from "./_event_log_store.ts";

const record = (offset: number, value: string): StoredRecord => ({
  offset,
  key: "k",
  value,
  headers: {},
  timestampMs: 1_700_000_000_000,
});

/** Real file io that, while `failing` is set, writes that many bytes of the next write and then throws. */
function flakyIo() {
  const state = { failWriteAfter: undefined as number | undefined, truncateFailures: 0, truncates: 0 };
  const io: StoreFileIo = {
    async write(file, bytes) {
      if (state.failWriteAfter === undefined) return await file.write(bytes);
      const keep = state.failWriteAfter;
      state.failWriteAfter = undefined;
      await file.write(bytes.subarray(0, keep));
      throw new Deno.errors.WriteZero("No space left on device (os error 28)");
    },
    async truncate(file, size) {
      state.truncates++;
      if (state.truncateFailures > 0) {
        state.truncateFailures--;
        throw new Error("Input/output error (os error 5)");
      }
      await file.truncate(size);
    },
  };
  return { io, state };
}

async function valuesOnReopen(dataDir: string): Promise<string[]> {
  const loaded = await new EventLogStore(dataDir, { fsync: false }).load();
  return [...loaded.topics.get("t")![0].records()].map((r) => `${r.offset}:${r.value}`);
}

async function withStore(
  test: (store: EventLogStore, state: ReturnType<typeof flakyIo>["state"], dir: string) => Promise<void>,
) {
  const dataDir = await Deno.makeTempDir({ prefix: "bv_event_log_store_" });
  try {
    const { io, state } = flakyIo();
    const store = new EventLogStore(dataDir, { fsync: false, io });
    await store.load();
    await store.createTopic("t", 1);
    await store.append("t", 0, [record(0, "kept")]);
    await test(store, state, dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("[memory] event log store cuts back an append that failed partway, whole lines included", async () => {
  await withStore(async (store, state, dataDir) => {
    // Two records, the write stops inside the second: the first line is complete but was never acknowledged.
    const firstLine = JSON.stringify({ o: 1, k: "k", v: "lost-1", h: {}, t: 1_700_000_000_000 }).length + 1;
    state.failWriteAfter = firstLine + 5;
    await assert.rejects(store.append("t", 0, [record(1, "lost-1"), record(2, "lost-2")]), Deno.errors.WriteZero);
    // The publish was refused, so the next one takes offset 1 again.
    await store.append("t", 0, [record(1, "next")]);
    assert.deepEqual(await valuesOnReopen(dataDir), ["0:kept", "1:next"]);
  });
});

Deno.test("[memory] event log store cuts a failed append on the next one when the first cut failed too", async () => {
  await withStore(async (store, state, dataDir) => {
    state.failWriteAfter = 7;
    state.truncateFailures = 1;
    await assert.rejects(store.append("t", 0, [record(1, "lost")]), Deno.errors.WriteZero);
    await store.append("t", 0, [record(1, "next")]);
    assert.equal(state.truncates, 2, "cut once on the failure (it failed), once before the next append");
    assert.deepEqual(await valuesOnReopen(dataDir), ["0:kept", "1:next"]);
  });
});

Deno.test("[memory] event log store refuses to append after a torn line it still cannot cut", async () => {
  await withStore(async (store, state, dataDir) => {
    state.failWriteAfter = 7;
    state.truncateFailures = 2;
    await assert.rejects(store.append("t", 0, [record(1, "lost")]), Deno.errors.WriteZero);
    await assert.rejects(store.append("t", 0, [record(1, "refused")]), /Input\/output error/);
    // Disk healthy again: the owed cut is made first, then the append.
    await store.append("t", 0, [record(1, "next")]);
    assert.deepEqual(await valuesOnReopen(dataDir), ["0:kept", "1:next"]);
  });
});
