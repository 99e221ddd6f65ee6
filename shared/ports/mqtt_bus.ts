/**
 * @module
 * The MQTT-bus port: publish/subscribe with QoS 0/1, MQTT v5 user properties and persistent sessions.
 * One adapter (mqtt.js) talks to either broker: Mosquitto (real) or an embedded aedes broker.
 */

export type QoS = 0 | 1;

export interface MqttMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: QoS;
  readonly userProperties: Readonly<Record<string, string>>;
}

export interface MqttBus {
  /** With QoS 1, resolves once the broker has acknowledged (PUBACK). */
  publish(
    topic: string,
    payload: string | Uint8Array,
    options?: { readonly qos?: QoS; readonly userProperties?: Readonly<Record<string, string>> },
  ): Promise<void>;
  /**
   * Subscribes to a topic filter. With QoS 1 a message is acknowledged only after `handler` resolves, so
   * a message whose handler did not finish is delivered again after a reconnect (persistent session).
   */
  subscribe(topicFilter: string, qos: QoS, handler: (message: MqttMessage) => Promise<void>): Promise<void>;
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** How to connect: the client id is the session identity when `cleanSession` is false. */
export interface MqttBusOptions {
  readonly url: string;
  readonly clientId: string;
  /** false keeps the session (subscriptions and queued QoS 1 messages) across reconnects. @default false */
  readonly cleanSession?: boolean;
  /** @default 5000 */
  readonly connectTimeoutMs?: number;
}
