/**
 * The bus's subscriptions beyond the contract: shared subscriptions (`$share/<group>/<filter>`) routed to their
 * handler by the real topic, a session moved from a plain filter to `$share` losing none of its queued messages,
 * `unsubscribe()` of a filter never subscribed, and retained messages (none at SUBSCRIBE on MQTT 5; marked `retain`
 * on aedes, which cannot be asked). Topics and client ids are unique per test; persistent sessions are discarded.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { realInfra } from "../../testing/real_infra.ts";
import { uniqueName } from "../../testing/unique.ts";
import type { MqttMessage } from "../../ports/mqtt_bus.ts";
import { startEmbeddedMqttBroker } from "../aedes/mod.ts";
import { createMqttBus } from "./mod.ts";

const decode = (payload: Uint8Array) => new TextDecoder().decode(payload);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HOLD_MS = 300;

/** Polls until `condition` holds, for up to 5 s. */
async function eventually(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await pause(20);
  }
}

function inbox() {
  const messages: MqttMessage[] = [];
  return {
    messages,
    handler: (message: MqttMessage) => {
      messages.push(message);
      return Promise.resolve();
    },
  };
}

/** Publishes with mqtt.js directly: the port has no retain flag (nothing here publishes retained messages). */
async function publishRaw(url: string, protocolVersion: 4 | 5, topic: string, payload: string, retain: boolean) {
  const client = await mqtt.connectAsync(url, { protocolVersion, clientId: uniqueName("raw"), clean: true });
  try {
    await client.publishAsync(topic, payload, { qos: 1, retain });
  } finally {
    await client.endAsync();
  }
}

/** Discards a persistent session, which matters on the shared broker. */
async function discardSession(url: string, clientId: string, protocolVersion: 4 | 5): Promise<void> {
  await (await createMqttBus({ url, clientId, cleanSession: true, protocolVersion })).close();
}

Deno.test("[mqtt] bus routes a $share subscription's messages to its handler on MQTT 3.1.1 (Mosquitto)", async () => {
  const prefix = uniqueName("bvt");
  const sub = await createMqttBus({
    url: realInfra.mqttUrl,
    clientId: uniqueName("share"),
    cleanSession: true,
    protocolVersion: 4,
    unmatchedHoldMs: HOLD_MS,
    onError: () => {},
  });
  const pub = await createMqttBus({ url: realInfra.mqttUrl, clientId: uniqueName("pub"), cleanSession: true });
  try {
    const got = inbox();
    // 3.1.1 carries no subscription identifier: the message's topic is all there is to route it by.
    await sub.subscribe(`$share/${uniqueName("g")}/${prefix}/+/t`, 1, got.handler);
    await pub.publish(`${prefix}/a/t`, "reading", { qos: 1 });
    await eventually("the shared subscription's message", () => got.messages.length > 0);
    assert.equal(got.messages[0].topic, `${prefix}/a/t`);
    assert.equal(decode(got.messages[0].payload), "reading");
  } finally {
    await sub.close();
    await pub.close();
  }
});

Deno.test(
  "[mqtt] bus moved from a plain filter to $share loses none of the readings queued meanwhile, then hands each once (Mosquitto)",
  async () => {
    const prefix = uniqueName("bvt");
    const clientId = uniqueName("bridge");
    const url = realInfra.mqttUrl;
    const plain = `${prefix}/+/t`;
    // The previous deploy subscribed plainly; the session (persistent) keeps that subscription, and the broker
    // queues for it what is published while no process is connected.
    const earlier = await createMqttBus({ url, clientId, onError: () => {} });
    await earlier.subscribe(plain, 1, () => Promise.resolve());
    await earlier.close();
    const pub = await createMqttBus({ url, clientId: uniqueName("pub"), cleanSession: true });
    try {
      for (let i = 1; i <= 3; i++) await pub.publish(`${prefix}/a/t`, `queued ${i}`, { qos: 1 });
      // A hold long enough that the queued copies, which arrive right after CONNACK, wait for subscribe() below.
      const sub = await createMqttBus({ url, clientId, unmatchedHoldMs: 2_000, onError: () => {} });
      try {
        const got = inbox();
        await sub.subscribe(`$share/${uniqueName("g")}/${plain}`, 1, got.handler);
        await sub.unsubscribe(plain);
        // Acknowledged to the publisher before: the session's copies are the only ones, carrying the old
        // subscription's identifier.
        await eventually("the queued readings", () => got.messages.length >= 3);
        await pub.publish(`${prefix}/a/t`, "live", { qos: 1 });
        await eventually("the live reading", () => got.messages.length >= 4);
        await pause(3 * HOLD_MS); // a second copy, if any, has had time to arrive
        assert.deepEqual(got.messages.map((m) => decode(m.payload)), ["queued 1", "queued 2", "queued 3", "live"]);
      } finally {
        await sub.close();
      }
    } finally {
      await pub.close();
      await discardSession(url, clientId, 5);
    }
  },
);

Deno.test("[mqtt] bus unsubscribe() from a filter the session never had resolves (Mosquitto 5 and 3.1.1, aedes)", async () => {
  const broker = await startEmbeddedMqttBroker({ port: 0 });
  try {
    const targets = [[realInfra.mqttUrl, 5], [realInfra.mqttUrl, 4], [broker.url, 4]] as const;
    for (const [url, protocolVersion] of targets) {
      const bus = await createMqttBus({ url, clientId: uniqueName("unsub"), cleanSession: true, protocolVersion });
      try {
        const prefix = uniqueName("bvt");
        await bus.unsubscribe(`${prefix}/+/t`);
        await bus.unsubscribe(`$share/${uniqueName("g")}/${prefix}/+/t`);
        // And the bus still works: a subscription afterwards gets its message.
        const got = inbox();
        await bus.subscribe(`${prefix}/+/t`, 1, got.handler);
        await bus.publish(`${prefix}/a/t`, "after", { qos: 1 });
        await eventually(`the message (${url}, ${protocolVersion})`, () => got.messages.length > 0);
      } finally {
        await bus.close();
      }
    }
  } finally {
    await broker.close();
  }
});

Deno.test("[mqtt] bus on MQTT 5 gets no retained message when it subscribes, first or again (Mosquitto)", async () => {
  const topic = `${uniqueName("bvt")}/a/t`;
  const clientId = uniqueName("sub");
  const url = realInfra.mqttUrl;
  await publishRaw(url, 5, topic, "retained", true);
  try {
    for (const start of ["first start", "restart"]) {
      const got = inbox();
      const sub = await createMqttBus({ url, clientId, unmatchedHoldMs: HOLD_MS, onError: () => {} });
      try {
        await sub.subscribe(topic, 1, got.handler);
        await publishRaw(url, 5, topic, `live after ${start}`, false);
        await eventually("the live message", () => got.messages.length > 0);
        await pause(200);
        assert.deepEqual(got.messages.map((m) => decode(m.payload)), [`live after ${start}`], start);
        assert.equal(got.messages[0].retain, false);
      } finally {
        await sub.close();
      }
    }
  } finally {
    // An empty retained payload clears the topic's retained message.
    await publishRaw(url, 5, topic, "", true);
    await discardSession(url, clientId, 5);
  }
});

Deno.test("[mqtt] bus marks a retained message as such on MQTT 3.1.1, which cannot refuse it (aedes)", async () => {
  const broker = await startEmbeddedMqttBroker({ port: 0 });
  try {
    await publishRaw(broker.url, 4, "bv/test/a/t", "retained", true);
    const got = inbox();
    const sub = await createMqttBus({ url: broker.url, clientId: uniqueName("sub"), protocolVersion: 4 });
    try {
      await sub.subscribe("bv/test/+/t", 1, got.handler);
      await eventually("the retained message", () => got.messages.length > 0);
      await publishRaw(broker.url, 4, "bv/test/a/t", "live", false);
      await eventually("the live message", () => got.messages.length > 1);
      assert.deepEqual(
        got.messages.map((m) => [decode(m.payload), m.retain]),
        [["retained", true], ["live", false]],
      );
    } finally {
      await sub.close();
    }
  } finally {
    await broker.close();
  }
});
