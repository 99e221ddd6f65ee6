import { ECOMMERCE_TOPICS } from "../mod.ts";
import assert from "node:assert/strict";
import { createKafkaEventLog } from "../../../shared/adapters/kafka/mod.ts";
import { createMqttBus } from "../../../shared/adapters/mqtt/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { createRedisCache } from "../../../shared/adapters/redis/mod.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { DLQ_HEADERS, dlqTopicOf, type EventLog, type MqttBus } from "../../../shared/ports/mod.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { TEST_CONSUMER_TIMINGS } from "../../../shared/testing/kafka_test_timings.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { inventoryCacheKey, startInventoryCacheProjection } from "../inventory/mod.ts";
import { startOutboxRelay } from "../outbox/mod.ts";
import {
  collectRecords,
  discardSession,
  eventually,
  migrateForSensors,
  productWithStock,
  runSensor,
  sensorBus,
  type SensorPlan,
  startPrivateMosquitto,
  stockOf,
} from "./_fixture_for_test.ts";
import {
  messageIdOf,
  SENSOR_ADJUSTMENT_SOURCE,
  SENSOR_DLQ_HEADERS,
  startSensorBridge,
  startSensorDeltaConsumer,
} from "./mod.ts";

function kafka(): EventLog {
  return createKafkaEventLog({
    brokers: realInfra.kafkaBrokers,
    clientId: uniqueName("sensors-test"),
    logLevel: "error",
    consumer: TEST_CONSUMER_TIMINGS,
  });
}

/** Deterministic readings that keep stock well above 0: mostly picks, some restocks. */
function readings(count: number, seed: number): number[] {
  return Array.from({ length: count }, (_, i) => ((i * 7 + seed) % 5 === 0 ? 5 : -1));
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/**
 * The idempotency id the bridge derives for reading `index` of `plan` as `runSensor` sends it (README,
 * "Idempotency id": `mid:` from the message-id property, else `seq:` from the payload). Payload text and
 * nonce only enter `rcv:` ids, which no reading here may get.
 */
function readingIdOf(plan: SensorPlan, index: number): Promise<string> {
  const [delta, seq] = [plan.deltas[index], index + 1];
  return plan.messageIdProperty
    ? messageIdOf(plan.sku, { delta, reason: "SENSOR" }, "", `${plan.deviceId}/${seq}`, "")
    : messageIdOf(plan.sku, { delta, reason: "SENSOR", seq, deviceId: plan.deviceId }, "", undefined, "");
}

/** The ids of every reading of `plans` for `sku`, one per reading. */
async function sentIdsOf(plans: readonly SensorPlan[], sku: string): Promise<string[]> {
  const mine = plans.filter((plan) => plan.sku === sku);
  return await Promise.all(mine.flatMap((plan) => plan.deltas.map((_, i) => readingIdOf(plan, i))));
}

/**
 * A one-reading device per sku, run after every other reading of that sku was acknowledged. Its record
 * follows them on the sku's partition (a bridge on ONE connection keeps a sku's order), so once it is applied
 * the consumer has handled all of them: a duplicate can no longer land after the check.
 */
function endMarkerOf(sku: string): SensorPlan {
  return { sku, deviceId: "end-marker", deltas: [1] };
}

/** Every message id in the ledger for `productId`, as often as it is there. */
async function appliedIdsOf(sql: ReturnType<typeof createPostgresSql>, productId: string): Promise<string[]> {
  const rows = await sql.query<{ message_id: string }>`
    select message_id from inventory_adjustment where product_id = ${productId} and source = ${SENSOR_ADJUSTMENT_SOURCE}`;
  return rows.map((row) => row.message_id);
}

/**
 * Waits until the end marker of `product` is applied, then asserts the ledger holds exactly the readings the
 * devices sent and the marker: none missing, none extra (a re-sent reading under an id of its own), none twice.
 */
async function assertAppliedExactlyOnce(
  sql: ReturnType<typeof createPostgresSql>,
  product: { id: string; sku: string },
  sentIds: readonly string[],
): Promise<void> {
  const markerId = await readingIdOf(endMarkerOf(product.sku), 0);
  await eventually(
    `the end marker of ${product.sku} applied`,
    async () => (await appliedIdsOf(sql, product.id)).includes(markerId),
    60_000,
  );
  const expected = new Set([...sentIds, markerId]);
  assert.equal(expected.size, sentIds.length + 1, "every reading sent has an id of its own");
  const applied = await appliedIdsOf(sql, product.id);
  const times = new Map<string, number>();
  for (const id of applied) times.set(id, (times.get(id) ?? 0) + 1);
  assert.deepEqual(
    {
      missing: [...expected].filter((id) => !times.has(id)),
      unexpected: applied.filter((id) => !expected.has(id)),
      twice: [...times].filter(([, n]) => n > 1).map(([id]) => id),
    },
    { missing: [], unexpected: [], twice: [] },
    `ledger of ${product.sku}`,
  );
}

/**
 * The pipeline under test on real services: a bridge on `mqttUrl` (persistent session), the delta consumer
 * on PostgreSQL + Kafka, the outbox relay and the inventory cache projection on Redis. `run` gets it started.
 */
async function withPipeline(
  mqttUrl: string,
  run: (pipeline: {
    sql: ReturnType<typeof createPostgresSql>;
    eventLog: EventLog;
    cache: ReturnType<typeof createRedisCache>;
    bridgeBus: MqttBus;
    region: string;
  }) => Promise<void>,
): Promise<void> {
  const region = uniqueName("t");
  const bridgeClientId = `bv-sensor-bridge-${region}`;
  const db = await createTestDatabase();
  const sql = createPostgresSql({ url: db.url });
  const eventLog = kafka();
  const cache = createRedisCache({ url: realInfra.redisUrl, keyPrefix: uniqueName("bvtest") + ":" });
  const closers: (() => Promise<unknown>)[] = [];
  try {
    await migrateForSensors(sql);
    // The service makes its topics at start (regional/ecommerce/mod.ts); this pipeline is not the service, and a
    // fresh broker does not create topics on first use.
    await eventLog.ensureTopics(ECOMMERCE_TOPICS.map((name) => ({ name, partitions: 3 })));
    const relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 50 });
    closers.push(() => relay.stop());
    const projection = await startInventoryCacheProjection({
      eventLog,
      cache,
      groupId: `${region}.inventory-cache`,
      from: "latest",
    });
    await projection.ready;
    closers.push(() => projection.close());
    // "latest": the topic is shared with earlier runs, whose skus this database does not know.
    const consumer = await startSensorDeltaConsumer({
      sql,
      eventLog,
      nudgeOutbox: () => relay.nudge(),
      region,
      from: "latest",
    });
    closers.push(() => consumer.close());
    const bridgeBus = await createMqttBus({
      url: mqttUrl,
      clientId: bridgeClientId,
      cleanSession: false,
      reconnectPeriodMs: 200,
      onError: () => {},
    });
    closers.push(() => bridgeBus.close());
    closers.push(() => discardSession(mqttUrl, bridgeClientId, 5));
    await run({ sql, eventLog, cache, bridgeBus, region });
  } finally {
    // The session is discarded after the bridge bus closed (pushed before it, so it runs after it).
    for (const close of closers.reverse()) await close().catch((e) => console.error("cleanup:", e));
    await eventLog.close();
    await cache.close();
    await sql.close();
    await db.drop();
  }
}

Deno.test({
  name: "a sensor fleet on Mosquitto: every delta is applied once, the snapshot follows, bad input is dead-lettered",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withPipeline(realInfra.mqttUrl, async ({ sql, eventLog, cache, bridgeBus, region }) => {
      const dlq = await collectRecords(eventLog, dlqTopicOf(sensorDeltaReceived.eventType));
      const bridge = await startSensorBridge({ mqtt: bridgeBus, eventLog, region });
      const sensors: MqttBus[] = [];
      try {
        const products = await Promise.all([1, 2, 3, 4].map(() => productWithStock(sql, 1_000)));
        // Two devices per sku: one numbers its readings with seq, the other with the MQTT 5 message-id.
        const plans: SensorPlan[] = products.flatMap((p, i) => [
          { sku: p.sku, deviceId: `shelf-${i}-a`, deltas: readings(15, i) },
          { sku: p.sku, deviceId: `shelf-${i}-b`, deltas: readings(15, i + 1), messageIdProperty: true },
        ]);
        for (const _ of plans) sensors.push(await sensorBus(realInfra.mqttUrl, 5));
        await Promise.all(plans.map((plan, i) => runSensor(sensors[i], plan)));
        // Re-sent readings (lost PUBACKs) carry the same seq or message-id.
        const first = plans[0];
        await sensors[0].publish(
          `iot/inventory/${first.sku}/delta`,
          JSON.stringify({ delta: first.deltas[0], reason: "SENSOR", seq: 1, deviceId: first.deviceId }),
          { qos: 1 },
        );
        await sensors[1].publish(`iot/inventory/${first.sku}/delta`, JSON.stringify({ delta: -1, reason: "SENSOR" }), {
          qos: 1,
          userProperties: { "message-id": `${plans[1].deviceId}/1` },
        });
        // Malformed input: bad JSON, an unknown field, an unknown sku.
        await sensors[0].publish(`iot/inventory/${first.sku}/delta`, "{oops", { qos: 1 });
        await sensors[0].publish(`iot/inventory/${first.sku}/delta`, '{"delta": 1, "reason": "X", "x": 1}', { qos: 1 });
        const unknownSku = uniqueName("NOSKU").toUpperCase();
        await sensors[0].publish(
          `iot/inventory/${unknownSku}/delta`,
          '{"delta": 1, "reason": "SENSOR", "seq": 1, "deviceId": "d"}',
          {
            qos: 1,
          },
        );
        // After the re-sends: once a sku's marker is applied, a re-send counted twice would already show.
        for (const product of products) await runSensor(sensors[1], endMarkerOf(product.sku));

        for (const [i, product] of products.entries()) {
          await assertAppliedExactlyOnce(sql, product, await sentIdsOf(plans, product.sku));
          const expected = 1_000 + sum(plans[2 * i].deltas) + sum(plans[2 * i + 1].deltas) + 1;
          assert.deepEqual(await stockOf(sql, product.id), { onHand: expected, adjustments: 30 + 1 });
          // The snapshot is set from stock.adjusted only; it converges on the last event.
          await eventually(`Redis snapshot of ${product.sku} at ${expected}`, async () => {
            const snapshot = await cache.get(inventoryCacheKey(product.id));
            return snapshot !== null && JSON.parse(snapshot).onHand === expected;
          });
        }
        const mine = () =>
          dlq.records.filter((r) => r.key === first.sku || r.key === unknownSku).map((r) =>
            r.headers[DLQ_HEADERS.error]
          );
        await eventually("three dead letters", () => mine().length >= 3);
        const reasons = mine();
        assert.ok(reasons.some((r) => /not UTF-8 JSON/.test(r)), reasons.join("\n"));
        assert.ok(reasons.some((r) => /Unrecognized key: "x"|"x"/.test(r)), reasons.join("\n"));
        assert.ok(reasons.some((r) => r.includes(`No product has sku "${unknownSku}"`)), reasons.join("\n"));
        const bad = dlq.records.find((r) => r.value === "{oops")!;
        assert.equal(bad.headers[SENSOR_DLQ_HEADERS.mqttTopic], `iot/inventory/${first.sku}/delta`);
      } finally {
        await bridge.close();
        await Promise.all(sensors.map((s) => s.close()));
        await dlq.close();
      }
    });
  },
});

Deno.test({
  name: "restarting Mosquitto while sensors publish at QoS 1: every acknowledged delta is applied exactly once",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Enough readings that the restart lands mid-stream; few enough for a loaded 2-core machine.
    const READINGS_PER_DEVICE = 60;
    const mosquitto = await startPrivateMosquitto();
    try {
      await withPipeline(mosquitto.url, async ({ sql, eventLog, bridgeBus, region }) => {
        const bridge = await startSensorBridge({ mqtt: bridgeBus, eventLog, region });
        const sensors: MqttBus[] = [];
        try {
          const products = await Promise.all([1, 2, 3].map(() => productWithStock(sql, 10_000)));
          const plans: SensorPlan[] = products.flatMap((p, i) => [
            { sku: p.sku, deviceId: `bin-${i}-a`, deltas: readings(READINGS_PER_DEVICE, i) },
            {
              sku: p.sku,
              deviceId: `bin-${i}-b`,
              deltas: readings(READINGS_PER_DEVICE, i + 2),
              messageIdProperty: true,
            },
          ]);
          for (const _ of plans) sensors.push(await sensorBus(mosquitto.url, 5));
          let acked = 0;
          const total = sum(plans.map((p) => p.deltas.length));
          const fleetStartedAt = performance.now();
          const fleet = Promise.all(
            plans.map((plan, i) => runSensor(sensors[i], plan, { pauseMs: 5, onAck: () => acked++ })),
          );
          await eventually("a third of the readings acknowledged", () => acked >= total / 3);
          const ackedBeforeRestart = acked;
          console.log(`restarting after ${Math.round(performance.now() - fleetStartedAt)} ms`);
          await mosquitto.restart(500);
          const results = await fleet;
          const allAckedAt = performance.now();
          assert.ok(ackedBeforeRestart < total, "the restart happened while sensors were publishing");
          assert.equal(acked, total, "every reading was eventually acknowledged");
          console.log(
            `restart at ${ackedBeforeRestart}/${total} acked; device re-sends: ${sum(results.map((r) => r.resends))}`,
          );
          for (const product of products) await runSensor(sensors[0], endMarkerOf(product.sku));
          for (const [i, product] of products.entries()) {
            // Every reading was acknowledged to its device, so every one must be in the ledger, once.
            await assertAppliedExactlyOnce(sql, product, await sentIdsOf(plans, product.sku));
            const expected = 10_000 + sum(plans[2 * i].deltas) + sum(plans[2 * i + 1].deltas) + 1;
            assert.deepEqual(await stockOf(sql, product.id), {
              onHand: expected,
              adjustments: 2 * READINGS_PER_DEVICE + 1,
            });
          }
          console.log(`all applied ${Math.round(performance.now() - allAckedAt)} ms after the last acknowledgement`);
        } finally {
          await bridge.close();
          await Promise.all(sensors.map((s) => s.close()));
        }
      });
    } finally {
      await mosquitto.stop();
    }
  },
});

Deno.test({
  name: "several bridge connections share one subscription, batch, and still apply every delta once",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withPipeline(realInfra.mqttUrl, async ({ sql, eventLog, bridgeBus, region }) => {
      const extraIds = [1, 2, 3].map((i) => `bv-sensor-bridge-${region}-${i}`);
      const extra = await Promise.all(
        extraIds.map((clientId) => createMqttBus({ url: realInfra.mqttUrl, clientId, onError: () => {} })),
      );
      const batchSizes: number[] = [];
      const countingLog: EventLog = {
        ...eventLog,
        publish: (topic, records) => {
          batchSizes.push(records.length);
          return eventLog.publish(topic, records);
        },
      };
      const bridge = await startSensorBridge({ mqtt: [bridgeBus, ...extra], eventLog: countingLog, region });
      const sensors: MqttBus[] = [];
      try {
        const product = await productWithStock(sql, 1_000);
        const plans: SensorPlan[] = [0, 1, 2, 3].map((i) => ({
          sku: product.sku,
          deviceId: `rack-${i}`,
          deltas: readings(20, i),
        }));
        for (const _ of plans) sensors.push(await sensorBus(realInfra.mqttUrl, 5));
        await Promise.all(plans.map((plan, i) => runSensor(sensors[i], plan)));
        await eventually("80 adjustments", async () => (await stockOf(sql, product.id)).adjustments >= 80);
        // Connections sharing a subscription keep no order, so no end marker can prove the consumer is done:
        // the ledger must stay unchanged for 2 s before it is compared, id by id, with what was sent.
        let applied = await appliedIdsOf(sql, product.id);
        for (let stableSince = Date.now(); Date.now() - stableSince < 2_000;) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          const now = await appliedIdsOf(sql, product.id);
          if (now.length !== applied.length) [applied, stableSince] = [now, Date.now()];
        }
        const sent = new Set(await sentIdsOf(plans, product.sku));
        assert.equal(sent.size, 80, "every reading sent has an id of its own");
        assert.deepEqual(
          {
            missing: [...sent].filter((id) => !applied.includes(id)),
            unexpected: applied.filter((id) => !sent.has(id)),
            twice: applied.filter((id, i) => applied.indexOf(id) !== i),
          },
          { missing: [], unexpected: [], twice: [] },
        );
        const expected = 1_000 + sum(plans.flatMap((p) => p.deltas));
        assert.deepEqual(await stockOf(sql, product.id), { onHand: expected, adjustments: 80 });
        assert.ok(Math.max(...batchSizes) > 1, `some batch held several records: ${batchSizes.join(",")}`);
      } finally {
        await bridge.close();
        await Promise.all([...sensors, ...extra].map((bus) => bus.close()));
        for (const clientId of extraIds) await discardSession(realInfra.mqttUrl, clientId, 5);
      }
    });
  },
});
