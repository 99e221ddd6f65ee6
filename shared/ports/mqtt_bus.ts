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
  /**
   * The broker sent it because it was retained (the last value on the topic, delivered to a new subscription),
   * not because it was published just now. On MQTT 5 the bus asks for none (Retain Handling 2); a 3.1.1 broker
   * (aedes) cannot be told, so a handler for which a stale copy is harmful refuses these itself.
   */
  readonly retain: boolean;
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
   * `$share/<group>/<filter>` (an MQTT shared subscription; the broker must support it) gives each message of
   * `<filter>` to one member of the group, and `handler` gets the messages of `<filter>`.
   */
  subscribe(topicFilter: string, qos: QoS, handler: (message: MqttMessage) => Promise<void>): Promise<void>;
  /**
   * Ends the session's subscription to `topicFilter` (exactly as subscribed, `$share/…` included), whether this
   * process or an earlier one of the persistent session made it; resolves as well when there was none. The filter's
   * handler here, if any, gets no further message.
   */
  unsubscribe(topicFilter: string): Promise<void>;
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
