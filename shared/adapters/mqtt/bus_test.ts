import { mqttBusContract } from "../../ports/contract/mqtt_bus_contract.ts";
import { realInfra } from "../../testing/real_infra.ts";
import { createMqttBus } from "./mod.ts";

// Mosquitto is shared by every test run on the machine; the contract isolates topics by a unique prefix.
mqttBusContract(
  "mosquitto",
  () => Promise.resolve({ url: realInfra.mqttUrl, protocolVersion: 5, cleanup: () => Promise.resolve() }),
  (options) => createMqttBus({ ...options, keepaliveSec: 10, reconnectPeriodMs: 500, publishTimeoutMs: 5_000 }),
);
