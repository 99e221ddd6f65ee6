import { mqttBusContract } from "../../ports/contract/mqtt_bus_contract.ts";
import { createMqttBus } from "../mqtt/mod.ts";
import { startEmbeddedMqttBroker } from "./mod.ts";

// A fresh broker on a free port for every test: its in-memory sessions start empty.
mqttBusContract(
  "aedes",
  async () => {
    const broker = await startEmbeddedMqttBroker({ port: 0 });
    return { url: broker.url, protocolVersion: broker.protocolVersion, cleanup: () => broker.close() };
  },
  (options) => createMqttBus({ ...options, keepaliveSec: 10, reconnectPeriodMs: 500, publishTimeoutMs: 5_000 }),
);
