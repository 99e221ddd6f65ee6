/**
 * @module
 * The contract an MQTT bus passes against a broker: QoS 0 and 1 delivery, user properties, wildcards,
 * persistent sessions (queued QoS 1 messages and unacknowledged ones are delivered after a reconnect), and
 * QoS 1 messages whose handler failed delivered again (the bus reconnects: MQTT has no negative acknowledgement).
 * Topics and client ids are unique per test, so runs on a shared broker do not see each other.
 */

import assert from "node:assert/strict";
import type { MqttBus, MqttBusOptions, MqttMessage } from "../mqtt_bus.ts";
import { uniqueName } from "../../testing/unique.ts";

/** A broker to test against; `protocolVersion` 4 means it speaks only MQTT 3.1.1 (no user properties). */
export interface BrokerUnderTest {
  readonly url: string;
  readonly protocolVersion: 4 | 5;
  cleanup(): Promise<void>;
}

/** Makes a bus connected to the broker with the given protocol version. */
export type ConnectBus = (options: MqttBusOptions & { readonly protocolVersion: 4 | 5 }) => Promise<MqttBus>;

const WAIT_MS = 5_000;

/** Registers the MQTT-bus contract tests, named `[kind] mqtt …`. */
export function mqttBusContract(
  kind: string,
  makeBroker: () => Promise<BrokerUnderTest>,
  connect: ConnectBus,
): void {
  const test = (name: string, body: (ctx: Context) => Promise<void>) =>
    Deno.test({
      name: `[${kind}] mqtt ${name}`,
      // mqtt.js keeps reconnect and keepalive timers the sanitizers would flag between tests.
      sanitizeOps: false,
      sanitizeResources: false,
      async fn() {
        const broker = await makeBroker();
        const buses: MqttBus[] = [];
        const ctx: Context = {
          prefix: uniqueName("bvt"),
          protocolVersion: broker.protocolVersion,
          async bus(options = {}) {
            const bus = await connect({
              url: broker.url,
              clientId: options.clientId ?? uniqueName("c"),
              cleanSession: options.cleanSession ?? true,
              protocolVersion: broker.protocolVersion,
            });
            buses.push(bus);
            return bus;
          },
        };
        try {
          await body(ctx);
        } finally {
          await Promise.all(buses.map((bus) => bus.close()));
          await broker.cleanup();
        }
      },
    });

  test("delivers a QoS 0 message", async ({ prefix, bus }) => {
    const [sub, pub] = [await bus(), await bus()];
    const inbox = collector();
    await sub.subscribe(`${prefix}/q0`, 0, inbox.handler);
    await pub.publish(`${prefix}/q0`, "hello");
    const [message] = await inbox.waitFor(1);
    assert.equal(message.topic, `${prefix}/q0`);
    assert.equal(new TextDecoder().decode(message.payload), "hello");
    assert.equal(message.qos, 0);
  });

  test("delivers a QoS 1 message after the PUBACK resolves publish()", async ({ prefix, bus }) => {
    const [sub, pub] = [await bus(), await bus()];
    const inbox = collector();
    await sub.subscribe(`${prefix}/q1`, 1, inbox.handler);
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    await pub.publish(`${prefix}/q1`, bytes, { qos: 1 });
    const [message] = await inbox.waitFor(1);
    assert.deepEqual(message.payload, bytes);
    assert.equal(Object.getPrototypeOf(message.payload), Uint8Array.prototype);
    assert.equal(message.qos, 1);
  });

  test("carries user properties (MQTT 5) or refuses them loudly (MQTT 3.1.1)", async (ctx) => {
    const [sub, pub] = [await ctx.bus(), await ctx.bus()];
    const inbox = collector();
    await sub.subscribe(`${ctx.prefix}/props`, 1, inbox.handler);
    const userProperties = {
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      region: "east",
    };
    if (ctx.protocolVersion === 5) {
      await pub.publish(`${ctx.prefix}/props`, "x", { qos: 1, userProperties });
      const [message] = await inbox.waitFor(1);
      assert.deepEqual(message.userProperties, userProperties);
    } else {
      await assert.rejects(pub.publish(`${ctx.prefix}/props`, "x", { qos: 1, userProperties }), TypeError);
      await pub.publish(`${ctx.prefix}/props`, "x", { qos: 1 });
      const [message] = await inbox.waitFor(1);
      assert.deepEqual(message.userProperties, {});
    }
  });

  test("routes wildcard subscriptions (+ and #)", async ({ prefix, bus }) => {
    const [sub, pub] = [await bus(), await bus()];
    const plus = collector();
    const hash = collector();
    await sub.subscribe(`${prefix}/+/temp`, 1, plus.handler);
    await sub.subscribe(`${prefix}/dev/#`, 1, hash.handler);
    for (const topic of ["a/temp", "dev/temp", "dev/x/y", "b/humidity", "a/b/temp"]) {
      await pub.publish(`${prefix}/${topic}`, topic, { qos: 1 });
    }
    const plusTopics = (await plus.waitFor(2)).map((m) => m.topic).sort();
    const hashTopics = (await hash.waitFor(2)).map((m) => m.topic).sort();
    await pub.publish(`${prefix}/end/temp`, "end", { qos: 1 });
    await plus.waitFor(3); // the marker arrived, so nothing else for `+` is still on its way
    assert.deepEqual(plusTopics, [`${prefix}/a/temp`, `${prefix}/dev/temp`]);
    assert.deepEqual(hashTopics, [`${prefix}/dev/temp`, `${prefix}/dev/x/y`]);
    assert.equal(hash.messages.length, 2);
  });

  test("delivers QoS 1 messages published while a persistent subscriber was away", async ({ prefix, bus }) => {
    const clientId = uniqueName("p");
    const first = await bus({ clientId, cleanSession: false });
    await first.subscribe(`${prefix}/queued`, 1, collector().handler);
    await first.close();

    const pub = await bus();
    const sent = ["m1", "m2", "m3", "m4", "m5"];
    for (const body of sent) await pub.publish(`${prefix}/queued`, body, { qos: 1 });

    const inbox = collector();
    const again = await bus({ clientId, cleanSession: false });
    await again.subscribe(`${prefix}/queued`, 1, inbox.handler);
    const received = (await inbox.waitFor(sent.length)).map((m) => new TextDecoder().decode(m.payload));
    assert.deepEqual(received, sent);
    await again.close();
    await bus({ clientId, cleanSession: true }); // discards the session on the shared broker
  });

  test("delivers again a QoS 1 message whose handler had not finished when the client dropped", async (ctx) => {
    const { prefix, bus } = ctx;
    const clientId = uniqueName("u");
    const first = await bus({ clientId, cleanSession: false });
    const started = Promise.withResolvers<void>();
    await first.subscribe(`${prefix}/unacked`, 1, () => {
      started.resolve();
      return new Promise<void>(() => {}); // never finishes: no PUBACK is sent
    });
    const pub = await bus();
    await pub.publish(`${prefix}/unacked`, "once", { qos: 1 });
    await started.promise;
    await first.close();

    const inbox = collector();
    const again = await bus({ clientId, cleanSession: false });
    await again.subscribe(`${prefix}/unacked`, 1, inbox.handler);
    const [message] = await inbox.waitFor(1);
    assert.equal(new TextDecoder().decode(message.payload), "once");
    await again.close();
    await bus({ clientId, cleanSession: true }); // discards the session on the shared broker
  });

  test("delivers again a QoS 1 message whose handler failed, then acknowledges it", async (ctx) => {
    const { prefix, bus } = ctx;
    const clientId = uniqueName("f");
    const topic = `${prefix}/failed`;
    const sub = await bus({ clientId, cleanSession: false });
    const inbox = collector();
    let calls = 0;
    // Fails the first time (Kafka down, say), succeeds after: the broker must get a chance to send it again.
    await sub.subscribe(topic, 1, (message) => {
      calls++;
      return calls === 1 ? Promise.reject(new Error("Downstream unavailable (test)")) : inbox.handler(message);
    });
    const pub = await bus();
    await pub.publish(topic, "retry me", { qos: 1 });
    const [message] = await inbox.waitFor(1);
    assert.equal(new TextDecoder().decode(message.payload), "retry me");
    // Handlers run one at a time, the next once the last one's PUBACK is written: "next" proves "retry me" acked.
    await pub.publish(topic, "next", { qos: 1 });
    await inbox.waitFor(2);
    await sub.close();

    // Acknowledged this time: the session's next connection gets what is published next, and nothing before it.
    const after = collector();
    const again = await bus({ clientId, cleanSession: false });
    await again.subscribe(topic, 1, after.handler);
    await pub.publish(topic, "marker", { qos: 1 });
    // "next" may come again (close() does not wait for its PUBACK: at least once); "retry me" must not.
    const bodies: string[] = [];
    while (bodies.at(-1) !== "marker") {
      const got = await after.waitFor(bodies.length + 1);
      bodies.push(new TextDecoder().decode(got[bodies.length].payload));
    }
    assert.ok(!bodies.includes("retry me"), `Delivered again after it was acknowledged: ${bodies.join(", ")}`);
    assert.equal(calls, 3);
    await again.close();
    await bus({ clientId, cleanSession: true }); // discards the session on the shared broker
  });

  test("delivers again every QoS 1 message of a burst whose handler failed", async (ctx) => {
    const { prefix, bus } = ctx;
    const clientId = uniqueName("b");
    const topic = `${prefix}/burst`;
    const sub = await bus({ clientId, cleanSession: false });
    const inbox = collector();
    const failedOnce = new Set<string>();
    await sub.subscribe(topic, 1, (message) => {
      const body = new TextDecoder().decode(message.payload);
      if (failedOnce.has(body)) return inbox.handler(message);
      failedOnce.add(body);
      return Promise.reject(new Error(`Downstream unavailable for "${body}" (test)`));
    });
    const pub = await bus();
    const sent = ["b1", "b2", "b3", "b4", "b5"];
    await Promise.all(sent.map((body) => pub.publish(topic, body, { qos: 1 })));
    const received = (await inbox.waitFor(sent.length)).map((m) => new TextDecoder().decode(m.payload));
    assert.deepEqual(received.toSorted(), sent);
    await sub.close();
    await bus({ clientId, cleanSession: true }); // discards the session on the shared broker
  });

  test("delivers only the failed QoS 1 message again, not those acknowledged around it", async (ctx) => {
    const { prefix, bus } = ctx;
    const clientId = uniqueName("m");
    const topic = `${prefix}/mixed`;
    const sub = await bus({ clientId, cleanSession: false });
    const inbox = collector();
    let failed = false;
    await sub.subscribe(topic, 1, (message) => {
      if (!failed && new TextDecoder().decode(message.payload) === "m1") {
        failed = true;
        return Promise.reject(new Error("Downstream unavailable (test)"));
      }
      return inbox.handler(message);
    });
    const pub = await bus();
    const sent = ["m1", "m2", "m3", "m4", "m5"];
    for (const body of sent) await pub.publish(topic, body, { qos: 1 });
    const received = (await inbox.waitFor(sent.length)).map((m) => new TextDecoder().decode(m.payload));
    assert.deepEqual(received.toSorted(), sent);
    // Sent after the reconnect that brought m1 back: had a PUBACK of m2…m5 been lost to it, that one would
    // have come again before this marker.
    await pub.publish(topic, "marker", { qos: 1 });
    const all = (await inbox.waitFor(sent.length + 1)).map((m) => new TextDecoder().decode(m.payload));
    assert.deepEqual(all, [...received, "marker"]);
    await sub.close();
    await bus({ clientId, cleanSession: true }); // discards the session on the shared broker
  });

  test("ping() resolves while connected and close() is final", async ({ bus }) => {
    const client = await bus();
    await client.ping(2_000);
    await client.close();
    await assert.rejects(client.ping(500));
  });
}

interface Context {
  readonly prefix: string;
  readonly protocolVersion: 4 | 5;
  bus(options?: { clientId?: string; cleanSession?: boolean }): Promise<MqttBus>;
}

/** Records messages; `waitFor(n)` resolves with the first n, or rejects after {@linkcode WAIT_MS}. */
function collector() {
  const messages: MqttMessage[] = [];
  const waiting: { count: number; resolve: () => void }[] = [];
  return {
    messages,
    handler(message: MqttMessage): Promise<void> {
      messages.push(message);
      for (const w of waiting.filter((w) => messages.length >= w.count)) w.resolve();
      return Promise.resolve();
    },
    async waitFor(count: number): Promise<MqttMessage[]> {
      if (messages.length < count) {
        const arrived = Promise.withResolvers<void>();
        waiting.push({ count, resolve: arrived.resolve });
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`Expected ${count} messages within ${WAIT_MS} ms; got ${messages.length}`)),
            WAIT_MS,
          );
        });
        try {
          await Promise.race([arrived.promise, timeout]);
        } finally {
          clearTimeout(timer);
        }
      }
      return messages.slice(0, count);
    },
  };
}
