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
    options?: {
      readonly qos?: QoS;
      readonly userProperties?: Readonly<Record<string, string>>;
      /** The broker keeps it as the topic's last value (a state topic); an empty retained payload deletes that. */
      readonly retain?: boolean;
    },
  ): Promise<void>;
  /**
   * Subscribes to a topic filter. With QoS 1 a message is acknowledged only after `handler` resolves, so
   * a message whose handler did not finish is delivered again after a reconnect (persistent session).
   * `$share/<group>/<filter>` (an MQTT shared subscription; the broker must support it) gives each message of
   * `<filter>` to one member of the group, and `handler` gets the messages of `<filter>`.
   */
  subscribe(
    topicFilter: string,
    qos: QoS,
    handler: (message: MqttMessage) => Promise<void>,
    options?: MqttSubscribeOptions,
  ): Promise<void>;
  /**
   * Ends the session's subscription to `topicFilter` (exactly as subscribed, `$share/…` included), whether this
   * process or an earlier one of the persistent session made it; resolves as well when there was none. The filter's
   * handler here, if any, gets no further message.
   */
  unsubscribe(topicFilter: string): Promise<void>;
  ping(timeoutMs: number): Promise<void>;
  /** Closes the connection with a DISCONNECT (after a retained `offline` when the bus has a `presenceTopic`). */
  close(): Promise<void>;
  /** The session identity this bus connected with. */
  readonly clientId: string;
  /**
   * Opens ONE more connection to the same broker, with this bus's protocol version, keepalive and session expiry,
   * under `clientId` with Clean Start false: it resumes that client id's persistent session (its subscriptions and
   * queued messages) instead of replacing it. It sends no SUBSCRIBE: the session keeps its owner's subscriptions,
   * and `options.handlers` (registered before CONNECT) get their messages. When the broker holds no session of
   * `clientId` (CONNACK Session Present 0: it expired, or never was), it ends the new one at once (DISCONNECT with
   * Session Expiry 0, so nothing of it stays) and resolves `undefined`. MQTT 5 only. It never reconnects and has no
   * presence: once the broker or the network closes it (MQTT 5 DISCONNECT 0x8E "Session taken over" when the
   * session's owner came back), it stays closed and `onClosed` is called once. For draining a session whose owner
   * is down (the sensor bridge's rescue).
   */
  connectAs(clientId: string, options: MqttConnectAsOptions): Promise<MqttBus | undefined>;
}

/** Options of {@linkcode MqttBus.subscribe}. */
export interface MqttSubscribeOptions {
  /**
   * Have the broker send the filter's retained messages at SUBSCRIBE (MQTT 5 Retain Handling 0): for state topics
   * (presence), whose last value is the point. MQTT 3.1.1 always sends them. @default false (Retain Handling 2)
   */
  readonly retained?: boolean;
}

/** Options of {@linkcode MqttBus.connectAs}. */
export interface MqttConnectAsOptions {
  /**
   * The handlers of the session's subscriptions, by filter exactly as its owner subscribed (`$share/…` included).
   * A message that none matches is held and then acknowledged unhandled, as `subscribe()` explains.
   */
  readonly handlers: readonly {
    readonly topicFilter: string;
    readonly handler: (message: MqttMessage) => Promise<void>;
  }[];
  /**
   * Called once when the connection ended, whoever ended it (not when `connectAs` resolved `undefined`); `reason`
   * says why in a few words, `takenOver` that the broker gave the session to a new connection of its client id.
   */
  readonly onClosed: (reason: string, how: { readonly takenOver: boolean }) => void;
}

/** How to connect: the client id is the session identity when `cleanSession` is false. */
export interface MqttBusOptions {
  readonly url: string;
  readonly clientId: string;
  /** false keeps the session (subscriptions and queued QoS 1 messages) across reconnects. @default false */
  readonly cleanSession?: boolean;
  /** @default 5000 */
  readonly connectTimeoutMs?: number;
  /**
   * Presence of this connection on a state topic (QoS 1, retained): `online` after every CONNACK, a Last Will
   * `offline` (the broker publishes it when the connection drops without DISCONNECT: a crash, a cut network, 1.5×
   * keepalive of silence), and `offline` published by `close()` before its DISCONNECT. A topic name: no `+`/`#`.
   */
  readonly presenceTopic?: string;
}

/** The presence payloads of {@linkcode MqttBusOptions.presenceTopic}. */
export const MQTT_PRESENCE = Object.freeze({ online: "online", offline: "offline" });
