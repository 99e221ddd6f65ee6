/**
 * @module
 * The embedded MQTT broker (aedes). See README.md for what it supports and what it does not.
 */
export { type EmbeddedMqttBroker, type EmbeddedMqttBrokerOptions, startEmbeddedMqttBroker } from "./broker.ts";
