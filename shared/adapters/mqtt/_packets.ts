/**
 * @module
 * What the bus reads off a PUBLISH packet: the subscription it came through and the port's message. Private to the
 * MQTT adapter.
 */
import type mqtt from "mqtt";
import type { MqttMessage } from "../../ports/mqtt_bus.ts";

/**
 * A subscription identifier derived from the filter (FNV-1a, 1…2^28-1), so a later process reusing the
 * persistent session recognises the identifiers on messages queued for the earlier one.
 */
export function subscriptionIdOf(filter: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(filter)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return (hash % 0x0ffffffe) + 1;
}

export function subscriptionIdsOf(packet: mqtt.IPublishPacket): number[] {
  return [packet.properties?.subscriptionIdentifier ?? []].flat();
}

export function toMessage(packet: mqtt.IPublishPacket): MqttMessage {
  const raw = packet.properties?.userProperties ?? {};
  const userProperties: Record<string, string> = {};
  // MQTT allows a key to repeat; the port carries one value per key, the last one sent.
  for (const [key, value] of Object.entries(raw)) {
    userProperties[key] = Array.isArray(value) ? value.at(-1)! : value;
  }
  const payload = typeof packet.payload === "string"
    ? new TextEncoder().encode(packet.payload)
    : new Uint8Array(packet.payload.buffer, packet.payload.byteOffset, packet.payload.length);
  return { topic: packet.topic, payload, qos: packet.qos === 0 ? 0 : 1, userProperties, retain: packet.retain };
}

/**
 * The filter a subscription's messages are published under: `$share/<group>/<filter>` (an MQTT 5 shared
 * subscription, which Mosquitto also takes on 3.1.1) delivers messages with their real topic, which matches
 * `<filter>`, never the `$share/…` string. On MQTT 5 the subscription identifier routes them anyway; on 3.1.1
 * there is none, and without this they would wait the unmatched hold and be acknowledged unhandled.
 */
export function topicFilterOf(subscription: string): string {
  if (!subscription.startsWith("$share/")) return subscription;
  const filterStart = subscription.indexOf("/", "$share/".length);
  return filterStart === -1 ? subscription : subscription.slice(filterStart + 1);
}
