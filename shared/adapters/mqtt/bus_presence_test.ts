/**
 * The bus's `presenceTopic` (retained `online` after every CONNACK, the Last Will `offline` when the connection drops,
 * `offline` at close) and `connectAs` (resumes another client id's session without SUBSCRIBE, never reconnects, calls
 * `onClosed` once, leaves no session behind when the broker had none), the `retain` publish option, and a restart onto
 * a session with queued messages when the bus has presence. Real Mosquitto; unique topics and client ids; persistent
 * sessions discarded. Deadlines are generous: the CI machine's 2 cores are shared.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { MQTT_PRESENCE, type MqttBus } from "../../ports/mqtt_bus.ts";
import { realInfra } from "../../testing/real_infra.ts";
import { uniqueName } from "../../testing/unique.ts";
import { createMqttBus } from "./mod.ts";

const url = realInfra.mqttUrl;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await pause(20);
  }
}

/** A TCP relay to the broker whose `drop()` cuts the connections through it (as a network failure) and keeps listening. */
function relay(): { url: string; drop(): void; close(): void } {
  const broker = new URL(url);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let conns: Deno.Conn[] = [];
  (async () => {
    for await (const inbound of listener) {
      const outbound = await Deno.connect({ hostname: broker.hostname, port: Number(broker.port || 1883) });
      conns.push(inbound, outbound);
      inbound.readable.pipeTo(outbound.writable).catch(() => {});
      outbound.readable.pipeTo(inbound.writable).catch(() => {});
    }
  })().catch(() => {});
  const drop = () => {
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* closed by its pipe already */ }
    }
    conns = [];
  };
  return {
    url: `mqtt://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    drop,
    close() {
      listener.close();
      drop();
    },
  };
}

/** A clean-session watcher of `topic` with its retained value: the payloads it saw, in order. */
async function watch(topic: string): Promise<{ seen: string[]; bus: MqttBus }> {
  const seen: string[] = [];
  const bus = await createMqttBus({ url, clientId: uniqueName("bvt-watch"), cleanSession: true });
  await bus.subscribe(topic, 1, (message) => {
    seen.push(new TextDecoder().decode(message.payload));
    return Promise.resolve();
  }, { retained: true });
  return { seen, bus };
}

async function discard(clientId: string): Promise<void> {
  await (await createMqttBus({ url, clientId, cleanSession: true })).close();
}

/** Whether the broker holds a session of `clientId` (CONNACK Session Present), leaving none behind. */
async function sessionPresent(clientId: string): Promise<boolean> {
  const client = mqtt.connect(url, {
    clientId,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 0 },
    reconnectPeriod: 0,
  });
  const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  await client.endAsync();
  return connack.sessionPresent;
}

Deno.test(
  "[mqtt] presenceTopic: online after connecting and after an automatic reconnect, the will's offline " +
    "when the connection drops, offline at close (Mosquitto)",
  async () => {
    const topic = `${uniqueName("bvt-presence")}/bus`;
    const proxy = relay();
    const watcher = await watch(topic);
    const bus = await createMqttBus({
      url: proxy.url,
      clientId: uniqueName("bvt-presence"),
      cleanSession: true,
      reconnectPeriodMs: 200,
      presenceTopic: topic,
      onError: () => {},
    });
    try {
      await eventually("online after connecting", () => watcher.seen.at(-1) === MQTT_PRESENCE.online);
      const before = watcher.seen.length;
      proxy.drop();
      await eventually("the will, then online after the reconnect", () => watcher.seen.length >= before + 2);
      assert.deepEqual(watcher.seen.slice(before, before + 2), [MQTT_PRESENCE.offline, MQTT_PRESENCE.online]);
      await bus.close();
      await eventually("offline at close", () => watcher.seen.at(-1) === MQTT_PRESENCE.offline);
    } finally {
      await bus.close();
      proxy.close();
      await watcher.bus.publish(topic, "", { qos: 1, retain: true });
      await watcher.bus.close();
    }
  },
);

Deno.test(
  "[mqtt] a bus with presence restarted onto its session handles every message queued meanwhile " +
    "(the PUBACK of online waits behind them) (Mosquitto)",
  async () => {
    const clientId = uniqueName("bvt-presence-queue");
    const topic = `${uniqueName("bvt-presence")}/bus`;
    const filter = `${uniqueName("bvt-queue")}/+`;
    const options = { url, clientId, presenceTopic: topic, unmatchedHoldMs: 2_000, onError: () => {} };
    const device = await createMqttBus({ url, clientId: uniqueName("bvt-device"), cleanSession: true });
    let bus = await createMqttBus(options);
    try {
      await bus.subscribe(filter, 1, () => Promise.resolve());
      await bus.close();
      const queued = 40;
      for (let i = 0; i < queued; i++) await device.publish(filter.replace("+", String(i)), "x", { qos: 1 });
      bus = await createMqttBus(options);
      const got = new Set<string>();
      await bus.subscribe(filter, 1, (message) => {
        got.add(message.topic);
        return Promise.resolve();
      });
      await eventually("every queued message handled", () => got.size === queued);
    } finally {
      await bus.close();
      await device.publish(topic, "", { qos: 1, retain: true });
      await device.close();
      await discard(clientId);
    }
  },
);

Deno.test(
  "[mqtt] connectAs resumes a session without SUBSCRIBE, is never reconnected once its owner takes the " +
    "session back, and calls onClosed once (Mosquitto)",
  async () => {
    const ownerId = uniqueName("bvt-owner");
    const prefix = uniqueName("bvt-resume");
    const held = `${prefix}/held/+`;
    const other = `${prefix}/other/+`;
    const device = await createMqttBus({ url, clientId: uniqueName("bvt-device"), cleanSession: true });
    const host = await createMqttBus({ url, clientId: uniqueName("bvt-host"), cleanSession: true });
    let owner = await createMqttBus({ url, clientId: ownerId });
    let rescue: MqttBus | undefined;
    try {
      await owner.subscribe(held, 1, () => Promise.resolve());
      await owner.close();
      for (let i = 0; i < 5; i++) await device.publish(`${prefix}/held/${i}`, "x", { qos: 1 });
      const got: string[] = [];
      const closes: { reason: string; takenOver: boolean }[] = [];
      const handler = (message: { topic: string }) => {
        got.push(message.topic);
        return Promise.resolve();
      };
      rescue = await host.connectAs(ownerId, {
        // `other` is no subscription of the session: with no SUBSCRIBE, none of its messages come.
        handlers: [{ topicFilter: held, handler }, { topicFilter: other, handler }],
        onClosed: (reason, { takenOver }) => closes.push({ reason, takenOver }),
      });
      assert.ok(rescue !== undefined, "the session exists");
      await eventually("the queued messages", () => got.length === 5);
      await device.publish(`${prefix}/other/1`, "x", { qos: 1 });
      await device.publish(`${prefix}/held/5`, "x", { qos: 1 });
      await eventually("a message published meanwhile", () => got.length === 6);
      await pause(300);
      assert.deepEqual(got.filter((topic) => topic.includes("/other/")), [], "no subscription was added");

      const back: string[] = [];
      owner = await createMqttBus({ url, clientId: ownerId, onError: () => {} });
      await owner.subscribe(held, 1, (message) => {
        back.push(message.topic);
        return Promise.resolve();
      });
      await eventually("the rescue connection closed", () => closes.length > 0);
      await pause(2_500); // past any reconnect period (the bus's default is 1 s)
      assert.equal(closes.length, 1, "onClosed once");
      await owner.ping(10_000); // the owner kept its session: nothing took it back
      await device.publish(`${prefix}/held/6`, "x", { qos: 1 });
      await eventually("the owner gets new messages", () => back.includes(`${prefix}/held/6`));
      assert.deepEqual(back, [`${prefix}/held/6`], "what the rescue acknowledged is not sent again");
    } finally {
      await rescue?.close();
      await owner.close();
      await host.close();
      await device.close();
      await discard(ownerId);
    }
  },
);

Deno.test("[mqtt] connectAs resolves undefined and leaves no session when the broker holds none (Mosquitto)", async () => {
  const host = await createMqttBus({ url, clientId: uniqueName("bvt-host"), cleanSession: true });
  const ghost = uniqueName("bvt-ghost");
  let closed = 0;
  try {
    const bus = await host.connectAs(ghost, { handlers: [], onClosed: () => closed++ });
    assert.equal(bus, undefined);
    await pause(200);
    assert.equal(closed, 0, "onClosed is for a connection that was handed out");
    assert.equal(await sessionPresent(ghost), false, "the session it made was ended with it");
  } finally {
    await host.close();
  }
});
