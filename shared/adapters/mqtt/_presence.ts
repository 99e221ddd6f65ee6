/**
 * @module
 * A connection's presence on a retained state topic (the port's `presenceTopic`): the Last Will the broker
 * publishes when the connection drops without DISCONNECT, and the `online` / `offline` the bus publishes itself.
 * Private to the MQTT adapter.
 */
import { Buffer } from "node:buffer";
import type mqtt from "mqtt";
import { MQTT_PRESENCE } from "../../ports/mqtt_bus.ts";
import { withTimeout } from "./_connection.ts";

/** Refuses a presence topic that is no topic name (wildcards) or empty: the will would be refused at CONNECT. */
export function assertPresenceTopic(topic: string | undefined): void {
  if (topic === undefined) return;
  if (topic === "" || /[+#]/.test(topic) || topic.includes("\0")) {
    throw new TypeError(`presenceTopic must be a topic name without "+", "#" or NUL, got "${topic}"`);
  }
}

/**
 * The Last Will of a connection with presence: retained (a peer subscribing later still sees it), QoS 1, sent at
 * once (no MQTT 5 Will Delay: observers confirm an `offline` themselves, see the sensor bridge's rescue).
 */
export function presenceWillOf(topic: string | undefined): mqtt.IClientOptions["will"] {
  if (topic === undefined) return undefined;
  return { topic, payload: Buffer.from(MQTT_PRESENCE.offline), qos: 1, retain: true };
}

/** Publishes `state` retained at QoS 1 and waits for the PUBACK, at most `timeoutMs`. */
export async function publishPresence(
  client: mqtt.MqttClient,
  topic: string,
  state: keyof typeof MQTT_PRESENCE,
  timeoutMs: number,
): Promise<void> {
  const sent = client.publishAsync(topic, Buffer.from(MQTT_PRESENCE[state]), { qos: 1, retain: true });
  // Settled by the timeout when it comes first; its own outcome is then nobody's to observe.
  sent.catch(() => {});
  await withTimeout(sent.then(() => {}), timeoutMs, `Publishing presence "${state}" to "${topic}" got no PUBACK`);
}
