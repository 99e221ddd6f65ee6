/**
 * MirrorMaker 2 stopped and started again: records written in east before the stop, and while it was down,
 * all reach west, and the ones it had copied before the stop are not copied again. Restarts the shared
 * MirrorMaker, so it runs only with `BV_TEST_BROKER_RESTARTS=1` (the alone phase of `scripts/run_tests.ts`):
 * `BV_TEST_BROKER_RESTARTS=1 deno test -A scripts/kafka/mirror_maker_restart_test.ts` (about 30–50 s).
 */
import assert from "node:assert/strict";
import type { IncomingRecord, OutgoingRecord } from "../../shared/ports/mod.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { closeRegions, collect, connectRegions, deleteTopics, waitForTopic } from "./_mirror_testing.ts";
import { ensureKafka, ensureMirrorMaker, KAFKA_REGIONS, remoteTopicOf, stopMirrorMaker } from "./mod.ts";

const enabled = Deno.env.get("BV_TEST_BROKER_RESTARTS") === "1";
const quiet = () => {};
const BATCH_SIZE = 20;
const COPY_TIMEOUT_MS = 30_000;

Deno.test({
  name: "MirrorMaker restarted copies what was written while it was down and does not copy earlier records again",
  ignore: !enabled,
  async fn() {
    await Promise.all(KAFKA_REGIONS.map((region) => ensureKafka(region, { log: quiet })));
    await ensureMirrorMaker({ log: quiet });
    const run = uniqueName("mm2r");
    const topic = `${run}.ecommerce.order.order.paid.v1`;
    const remote = remoteTopicOf("east", topic);
    const regions = await connectRegions(run);
    let collector: { close(): Promise<void> } | undefined;
    try {
      await regions.east.log.ensureTopics([{ name: topic, partitions: 3 }]);
      const before = batch(run, "before");
      await regions.east.log.publish(topic, before);
      await waitForTopic(regions.west.admin, remote, COPY_TIMEOUT_MS);
      const inWest = await collect(regions.west.log, remote);
      collector = inWest;
      await inWest.waitFor("the first batch in west", (rs) => hasAll(rs, before), COPY_TIMEOUT_MS);

      assert.equal(await stopMirrorMaker({ log: quiet }), true, "the running MirrorMaker was stopped");
      const during = batch(run, "during");
      await regions.east.log.publish(topic, during);
      const restartedMs = Date.now();
      await ensureMirrorMaker({ log: quiet });
      await inWest.waitFor("the batch written while down", (rs) => hasAll(rs, during), COPY_TIMEOUT_MS);
      console.log(
        `records written while MirrorMaker was down reached west ${Date.now() - restartedMs} ms after restart`,
      );

      const counts = countByKey(inWest.records);
      const copiedTwice = [...counts].filter(([, n]) => n > 1).map(([key]) => key);
      console.log(
        `${inWest.records.length} records in west for ${2 * BATCH_SIZE} written; copied twice: ${copiedTwice}`,
      );
      for (const record of before) assert.equal(counts.get(record.key), 1, `${record.key} copied once`);
      for (const record of during) assert.ok((counts.get(record.key) ?? 0) >= 1, `${record.key} copied`);
      for (const record of [...before, ...during]) {
        const copy = inWest.records.find((r) => r.key === record.key);
        assert.equal(copy?.value, record.value);
      }
    } finally {
      // Whatever happened above, leave MirrorMaker running for whoever runs next.
      await ensureMirrorMaker({ log: quiet }).catch((error) => console.error(`MirrorMaker not restarted: ${error}`));
      await collector?.close().catch(() => {});
      await Promise.allSettled([deleteTopics(regions.east.admin, [topic]), deleteTopics(regions.west.admin, [remote])]);
      await closeRegions(regions);
    }
  },
});

function batch(run: string, phase: string): OutgoingRecord[] {
  return Array.from({ length: BATCH_SIZE }, (_, i) => ({
    key: `${run}-${phase}-${i}`,
    value: JSON.stringify({ eventType: "ecommerce.order.order.paid.v1", orderId: `${run}-${phase}-${i}` }),
  }));
}

function hasAll(records: readonly IncomingRecord[], expected: readonly OutgoingRecord[]): boolean {
  const keys = new Set(records.map((r) => r.key));
  return expected.every((record) => keys.has(record.key));
}

function countByKey(records: readonly IncomingRecord[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const record of records) counts.set(record.key, (counts.get(record.key) ?? 0) + 1);
  return counts;
}
