/**
 * @module
 * The MQTT adapter of the MQTT-bus port (mqtt.js), for Mosquitto or the embedded aedes broker.
 * See README.md for semantics and failure modes.
 */
export { createMqttBus, type MqttBusAdapterOptions } from "./bus.ts";
