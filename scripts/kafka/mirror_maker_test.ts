/**
 * MirrorMaker 2 on the real regional brokers: what it copies, how fast, and that nothing comes back. The
 * test starts both brokers and MirrorMaker when they are not running (`ensureKafka`, `ensureMirrorMaker`)
 * and uses topics unique to the run, deleted at the end (about 15–45 s, most of it MirrorMaker's start
 * and its topic refresh).
 */
import assert from "node:assert/strict";
import type { IncomingRecord, OutgoingRecord } from "../../shared/ports/mod.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import {
  closeRegions,
  collect,
  connectRegions,
  deleteTopics,
  partitionsWithRecords,
  recordCount,
  sleep,
  waitForTopic,
} from "./_mirror_testing.ts";
import {
  ensureKafka,
  ensureMirrorMaker,
  isCheckpointedGroup,
  isMirroredTopic,
  KAFKA_REGIONS,
  REFRESH_TOPICS_INTERVAL_SECONDS,
  remoteTopicOf,
} from "./mod.ts";

const quiet = () => {};
/** Generous: a new topic is found within the refresh interval, then the task restarts (seconds on 2 cores). */
const DISCOVERY_TIMEOUT_MS = 30_000;
/** The bound asserted on one record's produce-to-consume time once its topic is mirrored. */
const VISIBILITY_BOUND_MS = 30_000;
const LATENCY_SAMPLES = 5;

Deno.test("the topic filter selects order, chat and feed events under any prefix, and no DLQ or remote topic", () => {
  for (
    const topic of [
      "ecommerce.order.order.created.v1",
      "ecommerce.order.order.paid.v1",
      "t123.ecommerce.order.order.created.v1",
      "bv_x1.y.ecommerce.order.order.fulfilled.v2",
      "chat.message.sent.v1",
      "chat.message.message.sent.v1",
      "social.feed.activity.v1",
    ]
  ) assert.equal(isMirroredTopic(topic), true, topic);
  for (
    const topic of [
      "ecommerce.order.order.created.v1.dlq",
      "ecommerce.product.product.updated.v1",
      "ecommerce.inventory.stock.adjusted.v1",
      "security.auth.user.registered.v1",
      "east.ecommerce.order.order.created.v1",
      "west.t123.ecommerce.order.order.created.v1",
      "heartbeats",
      "mm2-offset-syncs.west.internal",
    ]
  ) assert.equal(isMirroredTopic(topic), false, topic);
});

Deno.test("checkpoints cover the services' own groups, not the prefixed groups isolated runs leave behind", () => {
  for (
    const group of [
      "ecommerce-east.notifications.created",
      "ecommerce-west.webhooks",
      "ecommerce-east.analytics-revenue",
      "chat-west.rooms",
    ]
  ) assert.equal(isCheckpointedGroup(group), true, group);
  for (
    const group of [
      "bvbench_mwt04n1ywq2ap9.ecommerce-east.notifications.created",
      "t123.ecommerce-west.webhooks",
      "bv_test_group_x1",
      "east-mm2",
      "ecommerce-north.webhooks",
    ]
  ) assert.equal(isCheckpointedGroup(group), false, group);
});

Deno.test("an order event crosses regions intact (key, value, headers, partition) and never comes back", async () => {
  await Promise.all(KAFKA_REGIONS.map((region) => ensureKafka(region, { log: quiet })));
  await ensureMirrorMaker({ log: quiet });
  const run = uniqueName("mm2");
  // The same logical topic in both regions, each the origin of its own records.
  const topic = `${run}.ecommerce.order.order.created.v1`;
  const regions = await connectRegions(run);
  const collectors: { close(): Promise<void> }[] = [];
  try {
    await Promise.all(KAFKA_REGIONS.map((r) => regions[r].log.ensureTopics([{ name: topic, partitions: 3 }])));
    const sent = {
      east: recordFrom("east", `${run}-order-e1`),
      west: recordFrom("west", `${run}-order-w1`),
    };
    const publishedMs = Date.now();
    await Promise.all(KAFKA_REGIONS.map((r) => regions[r].log.publish(topic, [sent[r]])));

    const remote = { east: remoteTopicOf("west", topic), west: remoteTopicOf("east", topic) };
    await Promise.all([
      waitForTopic(regions.west.admin, remote.west, DISCOVERY_TIMEOUT_MS),
      waitForTopic(regions.east.admin, remote.east, DISCOVERY_TIMEOUT_MS),
    ]);
    const inWest = await collect(regions.west.log, remote.west);
    const inEast = await collect(regions.east.log, remote.east);
    collectors.push(inWest, inEast);
    await inWest.waitFor("the east record in west", (records) => records.length >= 1, DISCOVERY_TIMEOUT_MS);
    await inEast.waitFor("the west record in east", (records) => records.length >= 1, DISCOVERY_TIMEOUT_MS);
    console.log(`new topic mirrored both ways ${Date.now() - publishedMs} ms after its first record`);

    assertSameRecord(inWest.records[0], sent.east, remote.west);
    assertSameRecord(inEast.records[0], sent.west, remote.east);
    for (const [origin, target] of [["east", "west"], ["west", "east"]] as const) {
      assert.deepEqual(
        await partitionsWithRecords(regions[target].admin, remoteTopicOf(origin, topic)),
        await partitionsWithRecords(regions[origin].admin, topic),
        `the ${origin} record keeps its partition in ${target}`,
      );
    }

    // Visibility once the topic is mirrored: produce in east (acks=all) → consumed in west.
    const latenciesMs: number[] = [];
    for (let i = 1; i <= LATENCY_SAMPLES; i++) {
      const record = recordFrom("east", `${run}-order-e${i + 1}`);
      const startedMs = performance.now();
      await regions.east.log.publish(topic, [record]);
      await inWest.waitFor(`record ${record.key} in west`, (rs) => rs.some((r) => r.key === record.key), 30_000);
      latenciesMs.push(performance.now() - startedMs);
    }
    console.log(`east → west visibility: ${latenciesMs.map((ms) => ms.toFixed(1)).join(", ")} ms`);
    for (const ms of latenciesMs) assert.ok(ms < VISIBILITY_BOUND_MS, `visible after ${ms} ms`);

    // A loop would show within one topic refresh after the remote topics appeared: wait for two.
    await sleep(2 * REFRESH_TOPICS_INTERVAL_SECONDS * 1000);
    const eastTopics = await regions.east.admin.listTopics();
    const westTopics = await regions.west.admin.listTopics();
    assert.equal(eastTopics.includes(remoteTopicOf("west", remote.west)), false, "west.east.<topic> in east");
    assert.equal(westTopics.includes(remoteTopicOf("east", remote.east)), false, "east.west.<topic> in west");
    assert.equal(await recordCount(regions.east.admin, topic), 1 + LATENCY_SAMPLES, "east origin: no copies");
    assert.equal(await recordCount(regions.west.admin, topic), 1, "west origin: no copies");
    assert.equal(await recordCount(regions.west.admin, remote.west), 1 + LATENCY_SAMPLES, "each east record once");
    assert.equal(await recordCount(regions.east.admin, remote.east), 1, "the west record once");
  } finally {
    await Promise.allSettled(collectors.map((c) => c.close()));
    await Promise.allSettled([
      deleteTopics(regions.east.admin, [topic, remoteTopicOf("west", topic)]),
      deleteTopics(regions.west.admin, [topic, remoteTopicOf("east", topic)]),
    ]);
    await closeRegions(regions);
  }
});

function recordFrom(region: string, key: string): OutgoingRecord {
  return {
    key,
    value: JSON.stringify({ eventType: "ecommerce.order.order.created.v1", orderId: key, region }),
    headers: {
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "correlation-id": key,
      "x-bv-origin-region": region,
    },
  };
}

function assertSameRecord(received: IncomingRecord, sent: OutgoingRecord, topic: string): void {
  assert.equal(received.topic, topic);
  assert.equal(received.key, sent.key);
  assert.equal(received.value, sent.value);
  assert.deepEqual(received.headers, sent.headers);
}
