/**
 * The guard that makes MirrorMaker's Connect storage topics compacted before it starts, on the real east
 * broker with topic names unique to the run (the real `mm2-*` names belong to the running MirrorMaker).
 */
import assert from "node:assert/strict";
import { ConfigResourceTypes, Kafka, logLevel } from "kafkajs";
import { brokerLayout } from "./_config.ts";
import { ensureCompactedTopics, mirrorStorageTopics, type StorageTopicSpec } from "./_mirror_storage.ts";
import { uniqueName } from "../../shared/testing/unique.ts";

Deno.test("mirror storage: every flow's offsets, configs and status in its target, offset syncs in its source", () => {
  const byRegion = Object.fromEntries(mirrorStorageTopics().map(({ region, topics }) => [region, topics]));
  const names = (region: string) => byRegion[region].map((spec: StorageTopicSpec) => spec.name).sort();
  assert.deepEqual(names("east"), [
    "mm2-configs.west.internal",
    "mm2-offset-syncs.west.internal",
    "mm2-offsets.west.internal",
    "mm2-status.west.internal",
  ]);
  assert.deepEqual(names("west"), [
    "mm2-configs.east.internal",
    "mm2-offset-syncs.east.internal",
    "mm2-offsets.east.internal",
    "mm2-status.east.internal",
  ]);
  const configs = byRegion.east.find((spec: StorageTopicSpec) => spec.name.startsWith("mm2-configs."));
  assert.deepEqual({ partitions: configs?.partitions, exact: configs?.exactPartitions }, {
    partitions: 1,
    exact: true,
  });
});

Deno.test("mirror storage: creates missing topics compacted and mends ones auto-created with delete and 3 partitions", async () => {
  const admin = new Kafka({
    clientId: uniqueName("bv_test_mirror_storage"),
    brokers: [`127.0.0.1:${brokerLayout("east").port}`],
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  const prefix = uniqueName("bv_test_mm2");
  const specs: StorageTopicSpec[] = [
    { name: `${prefix}.offsets`, partitions: 4, exactPartitions: false },
    { name: `${prefix}.configs`, partitions: 1, exactPartitions: true },
    { name: `${prefix}.status`, partitions: 2, exactPartitions: false },
  ];
  try {
    // What auto-creation leaves: the broker defaults (delete, 3 partitions) on two of the three names.
    await admin.createTopics({
      waitForLeaders: true,
      topics: [specs[0], specs[1]].map((spec) => ({ topic: spec.name, numPartitions: 3, replicationFactor: 1 })),
    });
    const changed = await ensureCompactedTopics(admin, specs);
    assert.equal(changed.length, 3, changed.join("; "));

    const { topics } = await admin.fetchTopicMetadata({ topics: specs.map((spec) => spec.name) });
    const partitions = Object.fromEntries(topics.map((topic) => [topic.name, topic.partitions.length]));
    // Offsets keeps its 3 partitions (any count works there); configs is made again with exactly 1.
    assert.deepEqual(partitions, { [specs[0].name]: 3, [specs[1].name]: 1, [specs[2].name]: 2 });
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: specs.map((spec) => ({
        type: ConfigResourceTypes.TOPIC,
        name: spec.name,
        configNames: ["cleanup.policy"],
      })),
    });
    for (const resource of resources) {
      assert.equal(resource.configEntries[0].configValue, "compact", resource.resourceName);
    }

    // Nothing left to mend the second time.
    assert.deepEqual(await ensureCompactedTopics(admin, specs), []);
  } finally {
    const existing = new Set(await admin.listTopics());
    const mine = specs.map((spec) => spec.name).filter((name) => existing.has(name));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine });
    await admin.disconnect();
  }
});
