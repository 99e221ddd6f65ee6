import assert from "node:assert/strict";
import { createServer } from "node:net";
import { Aedes } from "aedes";
import { mqttBusContract } from "../../ports/contract/mqtt_bus_contract.ts";
import { realInfra } from "../../testing/real_infra.ts";
import { createMqttBus } from "./mod.ts";
import { startEmbeddedMqttBroker } from "../aedes/mod.ts";
import { mqttForcedReconnects, mqttHandlerFailures } from "./mqtt_metrics.ts";
import { uniqueName } from "../../testing/unique.ts";

// Mosquitto is shared by every test run on the machine; the contract isolates topics by a unique prefix.
mqttBusContract(
  "mosquitto",
  () => Promise.resolve({ url: realInfra.mqttUrl, protocolVersion: 5, cleanup: () => Promise.resolve() }),
  (options) => createMqttBus({ ...options, keepaliveSec: 10, reconnectPeriodMs: 500, publishTimeoutMs: 5_000 }),
);

Deno.test("[mqtt] bus refuses a publish at once while maxPendingPublishes wait for a broker that is down", async () => {
  const first = await startEmbeddedMqttBroker({ port: 0 });
  const port = Number(new URL(first.url).port);
  const errors: string[] = [];
  const bus = await createMqttBus({
    url: first.url,
    clientId: `bv-test-pending-${crypto.randomUUID()}`,
    protocolVersion: first.protocolVersion,
    reconnectPeriodMs: 200,
    publishTimeoutMs: 300,
    maxPendingPublishes: 2,
    onError: (error) => errors.push(error.message),
  });
  let second: Awaited<ReturnType<typeof startEmbeddedMqttBroker>> | undefined;
  try {
    await first.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Queued by mqtt.js while offline; each caller gets its timeout, but the messages stay queued.
    const queued = [bus.publish("bv/test/pending", "1", { qos: 1 }), bus.publish("bv/test/pending", "2", { qos: 1 })];
    // Refused by the bound itself (its own message), not by the publish timeout ("no PUBACK").
    await assert.rejects(bus.publish("bv/test/pending", "3", { qos: 1 }), /maxPendingPublishes/);
    for (const publish of queued) await assert.rejects(publish, /no PUBACK/);
    await assert.rejects(bus.publish("bv/test/pending", "4", { qos: 1 }), /maxPendingPublishes/, "still queued");
    // The broker is back: the queued two go out, and publishing works again.
    second = await startEmbeddedMqttBroker({ port });
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        await bus.publish("bv/test/pending", "5", { qos: 1 });
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    await bus.close();
    await second?.close();
  }
});

/** The value of an MQTT-bus counter for one client id (and outcome), 0 when never incremented. */
async function counted(
  counter: typeof mqttForcedReconnects | typeof mqttHandlerFailures,
  clientId: string,
  outcome?: string,
): Promise<number> {
  const { values } = await counter.get();
  const matches = (labels: Record<string, unknown>) =>
    labels.client_id === clientId && (outcome === undefined || labels.outcome === outcome);
  return values.filter((v) => matches(v.labels)).reduce((sum, v) => sum + v.value, 0);
}

const decode = (payload: Uint8Array) => new TextDecoder().decode(payload);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `condition` holds, for up to 5 s. */
async function eventually(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await pause(20);
  }
}

Deno.test("[mqtt] bus forces one reconnect for a burst of failed QoS 1 messages, reported once and counted", async () => {
  const broker = await startEmbeddedMqttBroker({ port: 0 });
  const clientId = uniqueName("burst");
  const errors: string[] = [];
  const connect = (id: string, cleanSession: boolean) =>
    createMqttBus({
      url: broker.url,
      clientId: id,
      cleanSession,
      protocolVersion: broker.protocolVersion,
      reconnectPeriodMs: 100,
      redeliveryDelayMsMin: 300,
      onError: (error) => errors.push(error.message),
    });
  const sub = await connect(clientId, false);
  const pub = await connect(uniqueName("pub"), true);
  try {
    const failedOnce = new Set<string>();
    const delivered: string[] = [];
    await sub.subscribe("bv/test/burst", 1, (message) => {
      const body = decode(message.payload);
      if (failedOnce.has(body)) {
        delivered.push(body);
        return Promise.resolve();
      }
      failedOnce.add(body);
      return Promise.reject(new Error(`Downstream unavailable for "${body}" (test)`));
    });
    const sent = ["b1", "b2", "b3", "b4", "b5"];
    await Promise.all(sent.map((body) => pub.publish("bv/test/burst", body, { qos: 1 })));
    await eventually("every message delivered again", () => delivered.length === sent.length);
    assert.deepEqual(delivered.toSorted(), sent);
    assert.equal(await counted(mqttForcedReconnects, clientId), 1);
    assert.equal(await counted(mqttHandlerFailures, clientId, "unacknowledged"), sent.length);
    assert.equal(errors.length, 1, `one report for the reconnect, got: ${errors.join(" / ")}`);
    assert.match(errors[0], /b1.*stays unacknowledged.*dropped in 300 ms/);
  } finally {
    await sub.close();
    await pub.close();
    await broker.close();
  }
});

Deno.test({
  name: "[mqtt] bus close() during a pending forced reconnect cancels it and leaves no timer",
  // On by default no longer (Deno 2): the timer of a pending forced reconnect must not outlive close().
  sanitizeOps: true,
}, async () => {
  const broker = await startEmbeddedMqttBroker({ port: 0 });
  const clientId = uniqueName("closing");
  const failed = Promise.withResolvers<void>();
  const sub = await createMqttBus({
    url: broker.url,
    clientId,
    protocolVersion: broker.protocolVersion,
    // Long enough that the pending forced reconnect outlives the test: the sanitizer fails a timer left behind.
    redeliveryDelayMsMin: 10_000,
    onError: () => failed.resolve(),
  });
  const pub = await createMqttBus({
    url: broker.url,
    clientId: uniqueName("pub"),
    cleanSession: true,
    protocolVersion: 4,
  });
  try {
    await sub.subscribe("bv/test/closing", 1, () => Promise.reject(new Error("Downstream unavailable (test)")));
    await pub.publish("bv/test/closing", "x", { qos: 1 });
    await failed.promise;
    await sub.close();
    assert.equal(await counted(mqttForcedReconnects, clientId), 0);
  } finally {
    await pub.close();
    await broker.close();
  }
});

Deno.test("[mqtt] bus acknowledges a failed QoS 1 message on a clean session, which cannot get it again", async () => {
  const broker = await startEmbeddedMqttBroker({ port: 0 });
  const clientId = uniqueName("clean");
  const errors: string[] = [];
  const sub = await createMqttBus({
    url: broker.url,
    clientId,
    cleanSession: true,
    protocolVersion: broker.protocolVersion,
    redeliveryDelayMsMin: 50,
    onError: (error) => errors.push(error.message),
  });
  const pub = await createMqttBus({
    url: broker.url,
    clientId: uniqueName("pub"),
    cleanSession: true,
    protocolVersion: 4,
  });
  try {
    const bodies: string[] = [];
    await sub.subscribe("bv/test/clean", 1, (message) => {
      bodies.push(decode(message.payload));
      return bodies.length === 1 ? Promise.reject(new Error("Downstream unavailable (test)")) : Promise.resolve();
    });
    await pub.publish("bv/test/clean", "lost", { qos: 1 });
    await pub.publish("bv/test/clean", "next", { qos: 1 });
    await eventually("the next message", () => bodies.includes("next"));
    await pause(200); // past the delay a persistent session would reconnect after
    assert.deepEqual(bodies, ["lost", "next"]);
    assert.equal(await counted(mqttForcedReconnects, clientId), 0);
    assert.equal(await counted(mqttHandlerFailures, clientId, "dropped"), 1);
    assert.match(errors.join(" / "), /acknowledged anyway: a clean session cannot receive it again/);
  } finally {
    await sub.close();
    await pub.close();
    await broker.close();
  }
});

/**
 * A persistent session subscribed to `old` by an earlier process (a deploy that dropped the filter but kept the
 * clientId), and a bus on that session that subscribes to `fresh` only.
 */
async function staleSubscriptionCase(url: string, protocolVersion: 4 | 5, prefix: string): Promise<void> {
  const clientId = uniqueName("stale");
  const [old, fresh] = [`${prefix}/old/+`, `${prefix}/fresh`];
  const holdMs = 600;
  const errors: string[] = [];
  const earlier = await createMqttBus({ url, clientId, protocolVersion });
  await earlier.subscribe(old, 1, () => Promise.resolve());
  await earlier.close();
  const sub = await createMqttBus({
    url,
    clientId,
    protocolVersion,
    unmatchedHoldMs: holdMs,
    reconnectPeriodMs: 100,
    redeliveryDelayMsMin: 50,
    onError: (error) => errors.push(error.message),
  });
  const pub = await createMqttBus({ url, clientId: uniqueName("pub"), cleanSession: true, protocolVersion });
  try {
    const delivered: string[] = [];
    await sub.subscribe(fresh, 1, (message) => {
      delivered.push(decode(message.payload));
      return Promise.resolve();
    });
    await pub.publish(`${prefix}/old/a`, "stale 1", { qos: 1 });
    await pub.publish(fresh, "fresh 1", { qos: 1 });
    await eventually("the first fresh message, behind the held stale one", () => delivered.includes("fresh 1"));
    await pause(2 * holdMs); // a forced reconnect would come 50 ms after the hold, and bring "stale 1" back
    assert.equal(
      await counted(mqttForcedReconnects, clientId),
      0,
      `no forced reconnect; reports: ${errors.join(" / ")}`,
    );
    assert.equal(await counted(mqttHandlerFailures, clientId, "unacknowledged"), 0);
    assert.equal(await counted(mqttHandlerFailures, clientId, "unmatched"), 1, "acknowledged: not sent again");

    // Known stale now: the next one is acknowledged at once, not held again, and not reported again.
    const sentAtMs = Date.now();
    await pub.publish(`${prefix}/old/a`, "stale 2", { qos: 1 });
    await pub.publish(fresh, "fresh 2", { qos: 1 });
    await eventually("the second fresh message", () => delivered.includes("fresh 2"));
    const tookMs = Date.now() - sentAtMs;
    assert.ok(tookMs < holdMs / 2, `"fresh 2" took ${tookMs} ms: "stale 2" was held again`);
    assert.deepEqual(delivered, ["fresh 1", "fresh 2"]);
    assert.equal(await counted(mqttHandlerFailures, clientId, "unmatched"), 2);
    assert.equal(await counted(mqttForcedReconnects, clientId), 0);
    assert.equal(errors.length, 1, `one report for the stale subscription, got: ${errors.join(" / ")}`);
    assert.match(errors[0], /No handler for ".*\/old\/a".*acknowledged unhandled after waiting 600 ms/);
    // MQTT 5 names the stale subscription by the identifier the earlier process gave it.
    if (protocolVersion === 5) assert.match(errors[0], /\(subscription identifier \d+\)/);
  } finally {
    await sub.close();
    await pub.close();
    // Discards the session, which matters on a shared broker.
    await (await createMqttBus({ url, clientId, cleanSession: true, protocolVersion })).close();
  }
}

Deno.test(
  "[mqtt] bus acknowledges after the hold a QoS 1 message of a subscription its session kept but no handler has, " +
    "with no forced reconnect (aedes, MQTT 3.1.1)",
  async () => {
    const broker = await startEmbeddedMqttBroker({ port: 0 });
    try {
      await staleSubscriptionCase(broker.url, broker.protocolVersion, "bv/test");
    } finally {
      await broker.close();
    }
  },
);

Deno.test(
  "[mqtt] bus acknowledges after the hold a QoS 1 message of a subscription its session kept but no handler has, " +
    "with no forced reconnect (Mosquitto, MQTT 5)",
  () => staleSubscriptionCase(realInfra.mqttUrl, 5, uniqueName("bvt")),
);

/** aedes whose SUBACK for `slowFilter` comes `delayMs` late; `unsubscribed` lists the filters clients dropped. */
async function startSlowSubackBroker(slowFilter: string, delayMs: number) {
  const unsubscribed: string[] = [];
  const broker = await Aedes.createBroker({
    authorizeSubscribe: (_client, subscription, done) => {
      if (subscription.topic === slowFilter) setTimeout(() => done(null, subscription), delayMs);
      else done(null, subscription);
    },
  });
  broker.on("unsubscribe", (filters) => unsubscribed.push(...filters));
  const server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    unsubscribed,
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

Deno.test("[mqtt] bus unsubscribes a filter whose subscribe() timed out, so the broker stops sending it", async () => {
  const [slow, fast] = ["bv/test/late/slow", "bv/test/late/fast"];
  const subackDelayMs = 1_000;
  const broker = await startSlowSubackBroker(slow, subackDelayMs);
  const clientId = uniqueName("late");
  const sub = await createMqttBus({
    url: broker.url,
    clientId,
    protocolVersion: 4,
    // Also the SUBACK timeout: shorter than the broker's delay, long enough for a local CONNACK.
    connectTimeoutMs: 300,
    unmatchedHoldMs: 200,
    reconnectPeriodMs: 100,
    redeliveryDelayMsMin: 50,
    onError: () => {},
  });
  const pub = await createMqttBus({
    url: broker.url,
    clientId: uniqueName("pub"),
    cleanSession: true,
    protocolVersion: 4,
  });
  try {
    const delivered: string[] = [];
    await sub.subscribe(fast, 1, (message) => {
      delivered.push(decode(message.payload));
      return Promise.resolve();
    });
    await assert.rejects(sub.subscribe(slow, 1, () => Promise.resolve()), /got no SUBACK/);
    // The late SUBACK subscribed the session; the UNSUBSCRIBE sent after it takes that back.
    await eventually("the bus to unsubscribe", () => broker.unsubscribed.includes(slow));
    await pub.publish(slow, "nobody's", { qos: 1 });
    await pub.publish(fast, "marker", { qos: 1 });
    await eventually("the marker", () => delivered.includes("marker"));
    assert.equal(await counted(mqttHandlerFailures, clientId, "unmatched"), 0, "the broker sent nothing for it");
    assert.equal(await counted(mqttForcedReconnects, clientId), 0);
  } finally {
    await sub.close();
    await pub.close();
    await broker.close();
  }
});
