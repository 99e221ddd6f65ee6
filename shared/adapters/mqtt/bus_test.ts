import assert from "node:assert/strict";
import { mqttBusContract } from "../../ports/contract/mqtt_bus_contract.ts";
import { realInfra } from "../../testing/real_infra.ts";
import { createMqttBus } from "./mod.ts";
import { startEmbeddedMqttBroker } from "../aedes/mod.ts";

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
