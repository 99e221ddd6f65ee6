import assert from "node:assert/strict";
import { createMemoryEventLog } from "../adapters/memory/mod.ts";
import type { IncomingRecord } from "../ports/mod.ts";
import { ORIGIN_REGION_HEADER, startEventMirror } from "./event_mirror.ts";

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 3_000): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("event mirrors replicate east ⇄ west both ways without looping", async () => {
  const topic = "ecommerce.order.order.created.v1";
  const east = createMemoryEventLog();
  const west = createMemoryEventLog();
  const mirrors = [
    await startEventMirror({ source: east, target: west, sourceRegion: "east", targetRegion: "west", topics: [topic] }),
    await startEventMirror({ source: west, target: east, sourceRegion: "west", targetRegion: "east", topics: [topic] }),
  ];
  await Promise.all(mirrors.map((m) => m.ready));
  const seen: Record<"east" | "west", IncomingRecord[]> = { east: [], west: [] };
  const readers = await Promise.all(
    (["east", "west"] as const).map((region) =>
      (region === "east" ? east : west).subscribe({
        groupId: `reader-${region}`,
        topics: [topic],
        from: "earliest",
        handler: (record) => {
          seen[region].push(record);
          return Promise.resolve();
        },
      })
    ),
  );
  try {
    await east.publish(topic, [{ key: "o-1", value: "from-east" }]);
    await west.publish(topic, [{ key: "o-2", value: "from-west" }]);
    await waitFor("both records in both regions", () => seen.east.length === 2 && seen.west.length === 2);
    // Give a looping mirror the chance to misbehave before asserting nothing more arrived.
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(seen.east.map((r) => r.value).sort(), ["from-east", "from-west"]);
    assert.deepEqual(seen.west.map((r) => r.value).sort(), ["from-east", "from-west"]);
    const copied = seen.west.find((r) => r.value === "from-east")!;
    assert.equal(copied.headers[ORIGIN_REGION_HEADER], "east");
    assert.equal(copied.key, "o-1");
  } finally {
    await Promise.all([...readers, ...mirrors].map((s) => s.close()));
    await Promise.all([east.close(), west.close()]);
  }
});
