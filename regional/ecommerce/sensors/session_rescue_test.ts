/**
 * The session rescue never fights a bridge for its own session (`session_rescue.ts`): when the down bridge returns
 * while the other region holds its session, the owner takes it back and keeps it — the rescue does not reconnect —
 * and new readings split between the regions again. Shared Mosquitto, unique group, sku and client ids; the
 * graceful-stop and crash cases are in `share_group_offline_test.ts`.
 */
import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createMqttBus } from "../../../shared/adapters/mqtt/mod.ts";
import { MQTT_PRESENCE } from "../../../shared/ports/mod.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { delay, discardSession, eventually } from "./_fixture_for_test.ts";
import { type RegionBridge, rescueMetric, twoRegions } from "./_two_regions_for_test.ts";
import { sensorPresenceFilterOf, sensorPresenceTopicOf, startSensorBridge } from "./mod.ts";

const url = realInfra.mqttUrl;

/** Whether the broker holds a session of `clientId`: a Clean Start false connection's CONNACK, with none left behind. */
async function hasSession(clientId: string): Promise<boolean> {
  const { default: mqtt } = await import("mqtt");
  const client = mqtt.connect(url, {
    clientId,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 0 },
    reconnectPeriod: 0,
  });
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  await client.endAsync();
  return connack.sessionPresent;
}

/** Publishes `payload` retained on `topic` ("" deletes it), with mqtt.js itself. */
async function publishRetained(topic: string, payload: string): Promise<void> {
  const { default: mqtt } = await import("mqtt");
  const client = await mqtt.connectAsync(url, { clientId: uniqueName("bv-test-retain"), clean: true });
  try {
    await client.publishAsync(topic, payload, { qos: 1, retain: true });
  } finally {
    await client.endAsync();
  }
}

/** The retained value of `topic` ("" when none), as a new subscription gets it. */
async function retainedOf(topic: string): Promise<string> {
  const bus = await createMqttBus({ url, clientId: uniqueName("bv-test-watch"), cleanSession: true });
  let value = "";
  try {
    await bus.subscribe(topic, 1, (message) => {
      value = new TextDecoder().decode(message.payload);
      return Promise.resolve();
    }, { retained: true });
    await delay(500);
    return value;
  } finally {
    await bus.close();
  }
}

Deno.test({
  name: "a bridge returning while the other region rescues its session takes it back and keeps it; new readings " +
    "split between the regions again, each forwarded once (Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const confirmMs = 300;
    const regions = await twoRegions(realInfra.mqttUrl, { rescue: { confirmMs } });
    const { east, west } = regions.ids;
    const running: RegionBridge[] = [regions.eastBridge];
    try {
      await regions.westBridge.stop();
      for (let i = 0; i < 20; i++) await regions.read();
      await eventually("east drains west's turn", () => regions.forwarded.east() >= 20, 5_000);
      assert.equal(await rescueMetric("rescues_active", west), 1, "east holds west's session");
      const rescued = await rescueMetric("rescued_readings_total", west);

      // The rescue's last PUBACKs on their way: a takeover within milliseconds of them has the broker send the owner
      // what they acknowledge once more (at least once; the consumer applies a message id once). Not this test's case.
      await delay(200);
      running.push(await regions.restartWest());
      await eventually("the rescue ends", async () => await rescueMetric("rescues_active", west) === 0, 5_000);
      // Past the confirmation and a bridge's reconnect (1 s): a rescue that came back would have taken the session
      // again by now, and west's bus would have taken it back in turn.
      await delay(confirmMs + 2_000);
      assert.equal(await rescueMetric("rescues_total", west), 1, "the rescue did not reconnect");
      assert.equal(await rescueMetric("rescues_active", west), 0);

      const eastBefore = regions.forwarded.east();
      for (let i = 0; i < 20; i++) await regions.read();
      await eventually(
        "both regions forward the new readings",
        () => regions.forwarded.east() + regions.forwarded.west() >= 40,
        5_000,
      );
      await delay(1_000); // a second copy, if any, has had time to arrive
      assert.ok(regions.forwarded.west() > 0, "west holds its session: it gets its turn");
      assert.ok(regions.forwarded.east() > eastBefore, "and east its own");
      assert.equal(await rescueMetric("rescued_readings_total", west), rescued, "none through a rescue any more");
      assert.equal(await rescueMetric("rescues_total", east), 0, "east was never down: never rescued");
      const ids = regions.messageIds();
      assert.equal(ids.size, 40, "every reading forwarded: none lost");
      assert.deepEqual([...ids.values()].filter((n) => n !== 1), [], "and none twice");
    } finally {
      await regions.close(...running);
    }
  },
});

Deno.test({
  name: "a bridge with presence restarted onto its session forwards every reading queued meanwhile, though no rescue " +
    "took them (Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // No rescue within the test: west's turn waits in its session for west's next process, as after a short restart.
    const regions = await twoRegions(realInfra.mqttUrl, { rescue: { confirmMs: 600_000 } });
    const running: RegionBridge[] = [regions.eastBridge];
    try {
      await regions.westBridge.stop();
      const readings = 60;
      for (let i = 0; i < readings; i++) await regions.read();
      await eventually("east forwards its turn", () => regions.forwarded.east() >= readings / 2, 15_000);
      running.push(await regions.restartWest());
      // Before the fix the bus awaited the PUBACK of `online` behind the first queued reading (held for subscribe()):
      // the hold ran out, and the readings queued ahead of the PUBACK were acknowledged unhandled.
      await eventually("west forwards its queued turn", () => regions.messageIds().size >= readings, 15_000);
      await delay(1_000); // a second copy, if any, has had time to arrive
      assert.equal(await rescueMetric("rescues_total", regions.ids.west), 0, "no rescue took part");
      assert.ok(regions.forwarded.west() > 0, "west's queued turn came through west");
      const ids = regions.messageIds();
      assert.equal(ids.size, readings, "every reading forwarded: none lost");
      assert.deepEqual([...ids.values()].filter((n) => n !== 1), [], "and none twice");
    } finally {
      await regions.close(...running);
    }
  },
});

Deno.test({
  name: "a bridge stopped during a rescue gets the PUBACK of the rescued reading in flight out before the rescue's " +
    "connection closes: the owner back does not get it again (Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Each Kafka publish takes 300 ms: when east stops, a rescued reading is in its batch.
    const regions = await twoRegions(url, { rescue: { confirmMs: 300 }, publishDelayMs: 300 });
    const { west } = regions.ids;
    const running: RegionBridge[] = [];
    try {
      await regions.westBridge.stop();
      for (let i = 0; i < 20; i++) await regions.read();
      await eventually(
        "east rescues west's turn",
        async () => await rescueMetric("rescued_readings_total", west) >= 2,
        20_000,
      );
      await regions.eastBridge.stop();
      // West back: its own session's rest, and (east now down) east's turn through its rescue of east's session.
      running.push(await regions.restartWest());
      await eventually("every reading forwarded", () => regions.messageIds().size >= 20, 30_000);
      await delay(2_000); // anything a session sent again has come by now
      const twice = [...regions.messageIds().values()].filter((n) => n !== 1);
      assert.deepEqual(twice, [], "no reading in flight at the stop forwarded again");
    } finally {
      await regions.close(...running);
    }
  },
});

Deno.test({
  name: "a down peer whose session expired is not revived: the rescue ends at the CONNACK, leaves no session, and " +
    "every later reading reaches the bridge that is up (Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const regions = await twoRegions(url, { rescue: { confirmMs: 1_500 } });
    const { west } = regions.ids;
    const running: RegionBridge[] = [regions.eastBridge];
    try {
      await regions.westBridge.stop();
      // As a session expiry would: west's session goes, its retained `offline` stays.
      await discardSession(url, west, 5);
      await eventually("a rescue was tried", async () => await rescueMetric("rescues_total", west) === 1, 20_000);
      await eventually("and ended", async () => await rescueMetric("rescues_active", west) === 0, 20_000);
      assert.equal(await hasSession(west), false, "no session of west was made: no ghost member of the group");
      for (let i = 0; i < 10; i++) await regions.read();
      await eventually("east forwards every reading", () => regions.forwarded.east() >= 10, 20_000);
      await delay(1_000);
      assert.equal(await rescueMetric("rescues_total", west), 1, "not tried again while west is away");
      assert.equal(regions.messageIds().size, 10);
    } finally {
      await regions.close(...running);
    }
  },
});

Deno.test({
  name: "a rescue closed by anything but the owner's return is tried again while the peer stays offline (Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const regions = await twoRegions(url, { rescue: { confirmMs: 300 } });
    const { west } = regions.ids;
    const running: RegionBridge[] = [regions.eastBridge];
    try {
      await regions.westBridge.stop();
      await eventually("east rescues west", async () => await rescueMetric("rescues_active", west) === 1, 20_000);
      // Another connection of west's id (no presence, as a network blip or a forced reconnect would leave it) takes
      // the rescue's connection away, then leaves the session in place.
      const intruder = await createMqttBus({ url, clientId: west, onError: () => {} });
      await intruder.close();
      await eventually("a second rescue", async () => await rescueMetric("rescues_total", west) === 2, 20_000);
      await eventually("holding west's session", async () => await rescueMetric("rescues_active", west) === 1, 20_000);
      for (let i = 0; i < 20; i++) await regions.read();
      await eventually("east forwards west's turn too", () => regions.forwarded.east() >= 20, 20_000);
    } finally {
      await regions.close(...running);
    }
  },
});

Deno.test({
  name: "only the configured peer's session is taken: a retained offline of any other client id is ignored (Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const regions = await twoRegions(url, { rescue: { confirmMs: 300 } });
    const stranger = uniqueName("bv-sensor-bridge-stranger");
    const topic = sensorPresenceTopicOf(regions.group, stranger);
    const running: RegionBridge[] = [regions.eastBridge, regions.westBridge];
    try {
      await (await createMqttBus({ url, clientId: stranger })).close(); // a session to take
      await publishRetained(topic, MQTT_PRESENCE.offline);
      await delay(2_000); // well past confirmMs
      assert.equal(await rescueMetric("rescues_total", stranger), 0, "never rescued");
    } finally {
      await regions.close(...running);
      await publishRetained(topic, "");
      await discardSession(url, stranger, 5);
    }
  },
});

Deno.test({
  name: "an unlinked bridge deletes the retained presence its session left in the former group (Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const group = uniqueName("bv-sensor-bridge");
    const clientId = uniqueName("bv-sensor-bridge-east");
    const topic = sensorPresenceTopicOf(group, clientId);
    // The linked process before the unlink stopped: its `offline` is retained, and would have the other region's
    // bridge take this live session over.
    await publishRetained(topic, MQTT_PRESENCE.offline);
    assert.equal(await retainedOf(topic), MQTT_PRESENCE.offline);
    const eventLog = createMemoryEventLog();
    const bus = await createMqttBus({ url, clientId, onError: () => {} });
    try {
      const bridge = await startSensorBridge({ mqtt: bus, formerShareGroup: group, eventLog, region: "east" });
      await eventually("no presence left", async () => await retainedOf(topic) === "", 20_000);
      await bridge.close();
    } finally {
      await bus.close();
      await eventLog.close?.();
      await publishRetained(topic, "");
      await discardSession(url, clientId, 5);
    }
  },
});

Deno.test("sensorPresenceTopicOf() names one level per bridge under its group and refuses wildcards", () => {
  assert.equal(sensorPresenceTopicOf("g1", "bv-sensor-bridge-east"), "bv/sensor-bridges/g1/bv-sensor-bridge-east");
  assert.equal(sensorPresenceFilterOf("g1"), "bv/sensor-bridges/g1/+");
  for (const [group, clientId] of [["g/1", "a"], ["g1", "a+"], ["g1", "#"], ["", "a"], ["g1", ""]]) {
    assert.throws(() => sensorPresenceTopicOf(group, clientId), TypeError);
  }
});
