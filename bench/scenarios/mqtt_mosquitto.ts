/**
 * @module
 * A QoS 1 publish (resolved on PUBACK) and its delivery to a QoS 1 subscriber, through the MQTT-bus port
 * (createMqttBus: acknowledges after the handler) against raw mqtt.js, on Mosquitto. Each side has its own
 * publisher and subscriber connection (MQTT 5, clean sessions, so nothing is left on the broker).
 */
import mqtt from "mqtt";
import { createMqttBus } from "../../shared/adapters/mqtt/mod.ts";
import { realInfra } from "../../shared/testing/real_infra.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { compare, resultOf, type Scenario } from "../harness.ts";
import { createRendezvous } from "../rendezvous.ts";
import { hostPortOf, idSequence } from "./_endpoints.ts";

const CONNECT_TIMEOUT_MS = 5_000;

export const mqttMosquitto: Scenario = {
  name: "mqtt_mosquitto",
  description: "QoS 1 publish → PUBACK and delivery to a subscriber: createMqttBus() vs raw mqtt.js, on Mosquitto",
  async run(ctx) {
    const url = realInfra.mqttUrl;
    await ctx.requireTcp(hostPortOf(url, 1883), "Mosquitto");
    const run = uniqueName("bvbench");
    const portTopic = `bvbench/${run}/port`;
    const rawTopic = `bvbench/${run}/raw`;
    const rendezvous = createRendezvous({ timeoutMs: 5_000 });
    const decoder = new TextDecoder();
    const nextId = idSequence("q");
    const busOptions = { url, cleanSession: true, protocolVersion: 5, connectTimeoutMs: CONNECT_TIMEOUT_MS } as const;
    const rawOptions = {
      protocolVersion: 5,
      clean: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      reconnectPeriod: 1_000,
    } as const;
    const closers: (() => Promise<unknown>)[] = [];
    try {
      const portPublisher = await createMqttBus({ ...busOptions, clientId: `${run}_port_pub` });
      closers.push(() => portPublisher.close());
      const portSubscriber = await createMqttBus({ ...busOptions, clientId: `${run}_port_sub` });
      closers.push(() => portSubscriber.close());
      await portSubscriber.subscribe(
        portTopic,
        1,
        (message) => Promise.resolve(void rendezvous.arrive(decoder.decode(message.payload))),
      );

      const rawPublisher = await mqtt.connectAsync(url, { ...rawOptions, clientId: `${run}_raw_pub` });
      closers.push(() => rawPublisher.endAsync());
      const rawSubscriber = await mqtt.connectAsync(url, { ...rawOptions, clientId: `${run}_raw_sub` });
      closers.push(() => rawSubscriber.endAsync());
      rawSubscriber.on("message", (_topic, payload) => rendezvous.arrive(payload.toString()));
      await rawSubscriber.subscribeAsync(rawTopic, { qos: 1 });

      const sides = await compare(
        {
          label: "createMqttBus",
          op: async () => {
            const id = nextId();
            const received = rendezvous.expect(id);
            await portPublisher.publish(portTopic, id, { qos: 1 });
            await received;
          },
        },
        {
          label: "mqtt.js",
          op: async () => {
            const id = nextId();
            const received = rendezvous.expect(id);
            await rawPublisher.publishAsync(rawTopic, id, { qos: 1 });
            await received;
          },
        },
        { iterationsPerRound: 1_500, warmupPerRound: 100, concurrency: 1, timeCapMsPerRound: 3_000 },
      );
      return resultOf("mqtt_mosquitto", sides);
    } finally {
      rendezvous.close();
      await Promise.allSettled(closers.map((close) => close()));
    }
  },
};
