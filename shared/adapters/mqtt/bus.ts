/**
 * @module
 * The MQTT-bus port on mqtt.js. One connection per bus; QoS 1 publishes resolve on PUBACK; a QoS 1 message
 * is acknowledged only after every matching handler resolved (through mqtt.js `handleMessage`, which also
 * holds back the next message, so handlers run one at a time, in arrival order). A QoS 1 message whose handler
 * failed stays unacknowledged, and the bus reconnects after a backoff so a persistent session delivers it again
 * (`redelivery.ts`). A message that no handler matches (the broker's session holds a subscription this process has
 * no handler for) is acknowledged after the hold instead: it can never be handled here (`unmatched.ts`). MQTT 5 by
 * default (user properties); `protocolVersion: 4` for brokers that speak only 3.1.1, such as aedes.
 */

import { Buffer } from "node:buffer";
import mqtt from "mqtt";
import type { MqttBus, MqttBusOptions, MqttMessage, QoS } from "../../ports/mqtt_bus.ts";
import { mqttForcedReconnects, mqttHandlerFailures } from "./mqtt_metrics.ts";
import { createRedelivery } from "./redelivery.ts";
import { topicMatches } from "./topic_match.ts";
import { createUnmatched } from "./unmatched.ts";
import { CLOSE_TIMEOUT_MS, connected, dropConnection, withTimeout } from "./_connection.ts";

/** Adapter options on top of the port's {@linkcode MqttBusOptions}. */
export interface MqttBusAdapterOptions extends MqttBusOptions {
  /** 5 carries user properties; 4 (MQTT 3.1.1) cannot, and publishing some then throws. @default 5 */
  readonly protocolVersion?: 4 | 5;
  /** Seconds between PINGREQs when idle; the broker drops us after 1.5× this with no traffic. @default 30 */
  readonly keepaliveSec?: number;
  /** Delay between reconnect attempts after the connection drops. @default 1000 */
  readonly reconnectPeriodMs?: number;
  /** How long a publish waits for its PUBACK (QoS 1) or for the write (QoS 0). @default 5000 */
  readonly publishTimeoutMs?: number;
  /** MQTT 5 only: how long the broker keeps a persistent session after we disconnect. @default 86400 */
  readonly sessionExpirySec?: number;
  /**
   * How long a QoS 1 message that no handler matches is held (unacknowledged) waiting for `subscribe()`:
   * a persistent session delivers its queued messages right after CONNACK, before the process subscribed
   * again. Still unmatched after it, the message is acknowledged unhandled, and later messages of the same
   * subscription (or topic) are not held again. @default 5000
   */
  readonly unmatchedHoldMs?: number;
  /**
   * After a QoS 1 handler failed on a persistent session, how long until the bus drops the connection so the
   * broker delivers the message again (mqtt.js then reconnects after `reconnectPeriodMs`). Every message that
   * fails meanwhile is covered by the same reconnect. @default 1000
   */
  readonly redeliveryDelayMsMin?: number;
  /** The delay above doubles with each forced reconnect while handlers keep failing, up to this. @default 30000 */
  readonly redeliveryDelayMsMax?: number;
  /**
   * Receives connection errors and handler failures: once per forced reconnect for QoS 1 on a persistent session
   * (the first failure, with the delay), else once per message.
   */
  readonly onError?: (error: Error) => void;
  /**
   * Publishes mqtt.js may hold at once (sent and not yet acknowledged, or queued while the connection is
   * down: mqtt.js keeps a QoS 1 message until it gets through, even after its `publish` timed out). One more
   * is refused at once instead of growing that queue without bound through an outage. @default 1000
   */
  readonly maxPendingPublishes?: number;
}

type Handler = (message: MqttMessage) => Promise<void>;

/** Connects and resolves once the broker accepted the session (CONNACK). */
export async function createMqttBus(options: MqttBusAdapterOptions): Promise<MqttBus> {
  const {
    url,
    clientId,
    cleanSession = false,
    connectTimeoutMs = 5_000,
    protocolVersion = 5,
    keepaliveSec = 30,
    reconnectPeriodMs = 1_000,
    publishTimeoutMs = 5_000,
    sessionExpirySec = 86_400,
    unmatchedHoldMs = 5_000,
    maxPendingPublishes = 1_000,
    redeliveryDelayMsMin = 1_000,
    redeliveryDelayMsMax = 30_000,
    onError = (error: Error) => console.error(`[mqtt ${clientId}]`, error.message),
  } = options;
  if (clientId === "") throw new TypeError("Cannot connect to MQTT: clientId is empty; it names the session");
  if (!Number.isSafeInteger(maxPendingPublishes) || maxPendingPublishes < 1) {
    throw new RangeError(`maxPendingPublishes must be a positive whole number, got ${maxPendingPublishes}`);
  }
  if (!(redeliveryDelayMsMin > 0 && redeliveryDelayMsMin <= redeliveryDelayMsMax)) {
    throw new RangeError(
      `redeliveryDelayMsMin must be above 0 and at most redeliveryDelayMsMax (${redeliveryDelayMsMax}), ` +
        `got ${redeliveryDelayMsMin}`,
    );
  }
  /** Publishes handed to mqtt.js whose callback has not run yet (a timeout does not take one off). */
  let pendingPublishes = 0;

  const client = mqtt.connect(url, {
    clientId,
    protocolVersion,
    clean: cleanSession,
    keepalive: keepaliveSec,
    connectTimeout: connectTimeoutMs,
    reconnectPeriod: reconnectPeriodMs,
    // Subscriptions are re-sent after a reconnect only when the broker lost the session.
    resubscribe: true,
    // QoS 0 is fire-and-forget: while offline it is dropped rather than queued without bound.
    queueQoSZero: false,
    // mqtt.js formats a debug line per packet unless told otherwise (~1 % of a busy bridge's CPU); the bus
    // reports what matters through `onError`.
    log: () => {},
    // MQTT 5: with Clean Start false the session must outlive the connection, or the broker drops it at once.
    properties: protocolVersion === 5 && !cleanSession ? { sessionExpiryInterval: sessionExpirySec } : undefined,
  });
  /** `matches` is the filter a message's real topic is matched against: a shared subscription's without `$share/…`. */
  const handlers: { filter: string; matches: string; id: number; handler: Handler }[] = [];
  const waiters = new Set<() => void>();
  let closed = false;
  const matching = (packet: mqtt.IPublishPacket) => {
    // MQTT 5 brokers may send one copy per matching subscription; the subscription identifiers say which. A copy
    // whose identifiers are none of ours came through a subscription an earlier process made and this session kept
    // (the plain filter a deploy replaced with `$share/…`, or the reverse): it goes by topic to the handler of the
    // same filter. Queued while no process ran, it is the only copy there is (its publisher had its PUBACK long ago),
    // and dropping it would lose it. The caller takes the stale subscription back (`unsubscribe()`); until then a
    // message may come twice, once per subscription (README).
    const ids = subscriptionIdsOf(packet);
    const byId = handlers.filter((h) => ids.includes(h.id));
    const chosen = byId.length > 0 ? byId : handlers.filter((h) => topicMatches(h.matches, packet.topic));
    return chosen.map((h) => h.handler);
  };
  const unmatched = createUnmatched({
    keysMax: UNMATCHED_KEYS_MAX,
    reportIntervalMs: UNMATCHED_REPORT_INTERVAL_MS,
    now: Date.now,
    clientId,
    holdMs: unmatchedHoldMs,
    onReport: onError,
  });

  /** The handlers of a QoS 1 message with none yet, once `subscribe()` registered one or the hold is over. */
  async function heldFor(packet: mqtt.IPublishPacket): Promise<Handler[]> {
    const deadlineMs = Date.now() + unmatchedHoldMs;
    let targets: Handler[] = [];
    // Every subscribe() wakes the wait; one for another filter must not cut the hold short, or a message it was
    // meant for would be acknowledged unhandled moments before its own subscribe().
    while (targets.length === 0 && !closed && Date.now() < deadlineMs) {
      await waitForHandler(waiters, deadlineMs - Date.now());
      targets = matching(packet);
    }
    return targets;
  }

  /** Runs the handlers; "unmatched" when there is none to run, and the message should be acknowledged as it is. */
  async function dispatch(packet: mqtt.IPublishPacket, hold: boolean): Promise<"handled" | "unmatched"> {
    let targets = matching(packet);
    if (targets.length === 0 && hold) targets = await heldFor(packet);
    if (targets.length === 0) {
      // The hold ended with close(): the session's next connection may well have a handler for it.
      if (closed && packet.qos > 0) throw new Error(`No handler for "${packet.topic}" before close()`);
      return "unmatched";
    }
    const message = toMessage(packet);
    await Promise.all(targets.map((handler) => handler(message)));
    return "handled";
  }

  const redelivery = createRedelivery({
    delayMsMin: redeliveryDelayMsMin,
    delayMsMax: redeliveryDelayMsMax,
    isConnected: () => client.connected,
    dropConnection: () => dropConnection(client),
    onScheduled: (error, delayMs) =>
      onError(
        new Error(
          `${error.message}; it stays unacknowledged, and the connection to ${url} is dropped in ${delayMs} ms ` +
            `so the broker delivers it (and any other that fails meanwhile) again`,
          { cause: error },
        ),
      ),
    onDropped: () => mqttForcedReconnects.inc({ client_id: clientId }),
  });
  // Whoever closed it, the next connection of a persistent session gets the unacknowledged messages again.
  client.on("close", () => redelivery.disconnected());

  // mqtt.js sends the PUBACK only once this callback runs without an error, and reads no further packet
  // before it runs: that is what makes "acknowledge after the handler" work on MQTT 3.1.1 and 5 alike. An
  // error means no PUBACK and nothing else: mqtt.js reads the next packet, hence `redelivery`.
  client.handleMessage = (packet, callback) => {
    // The connection is being dropped: a message handled now might not get its PUBACK out; the session sends
    // it again after the reconnect.
    if (packet.qos > 0 && redelivery.dropping) return callback(new Error("Reconnecting; left unacknowledged"));
    const connection = redelivery.began();
    const ids = subscriptionIdsOf(packet);
    // Not held again once a message of the same subscription waited a whole hold in vain: each hold stops the
    // connection's traffic, and a stale subscription may keep receiving for as long as the session lives.
    const hold = packet.qos > 0 && !unmatched.stale(packet.topic, ids);
    dispatch(packet, hold).then(
      (outcome) => {
        if (outcome === "handled") {
          redelivery.succeeded();
        } else {
          // Not a handler failure, and no forced reconnect: the broker would send it first again, every time.
          // Nor does it say anything about the handlers' health, so it leaves the backoff alone.
          mqttHandlerFailures.inc({ client_id: clientId, outcome: "unmatched" });
          unmatched.acknowledged(packet.topic, ids, hold);
        }
        settle(callback, connection);
      },
      (error: unknown) => {
        const cause = error instanceof Error ? error : new Error(String(error));
        const failure = new Error(`Handler for "${packet.topic}" failed: ${cause.message}`, { cause });
        if (packet.qos > 0 && !cleanSession) {
          mqttHandlerFailures.inc({ client_id: clientId, outcome: "unacknowledged" });
          redelivery.failed(failure, connection);
          settle(callback, connection, cause);
          return;
        }
        mqttHandlerFailures.inc({ client_id: clientId, outcome: "dropped" });
        if (packet.qos === 0) {
          onError(failure);
          settle(callback, connection, cause);
          return;
        }
        // A clean session is never sent a message again, so leaving it unacknowledged would only hold one of
        // the broker's in-flight slots until we disconnect, when the broker discards it anyway.
        onError(new Error(`${failure.message}; acknowledged anyway: a clean session cannot receive it again`));
        settle(callback, connection);
      },
    );
  };
  const settle = (callback: (error?: Error) => void, connection: number, error?: Error) => {
    try {
      callback(error);
    } finally {
      redelivery.settled(connection);
    }
  };
  /** Best effort: UNSUBSCRIBE goes out after the SUBSCRIBE, so the broker ends unsubscribed whenever it answers. */
  const unsubscribeLeftover = (filter: string) =>
    withTimeout(client.unsubscribeAsync(filter), connectTimeoutMs, `Unsubscribing from "${filter}" got no UNSUBACK`)
      .catch((error: Error) => {
        const what = `Cannot unsubscribe from "${filter}" after subscribe() failed: ${error.message}`;
        if (!closed) onError(new Error(`${what}; its messages are acknowledged unhandled`, { cause: error }));
      });
  // Installed before the CONNACK is read: a persistent session's queued messages follow it immediately.
  await connected(client, connectTimeoutMs, url);
  // Dropping the connection may end in a reset from the broker: expected, and reported once already.
  client.on("error", (error) => {
    if (!redelivery.dropping) onError(error);
  });

  return {
    publish(topic, payload, publishOptions = {}) {
      const { qos = 0, userProperties } = publishOptions;
      const hasProperties = userProperties !== undefined && Object.keys(userProperties).length > 0;
      if (hasProperties && protocolVersion !== 5) {
        return Promise.reject(
          new TypeError(
            `Cannot publish user properties to "${topic}" over MQTT 3.1.1; connect with protocolVersion 5`,
          ),
        );
      }
      if (pendingPublishes >= maxPendingPublishes) {
        return Promise.reject(
          new Error(
            `Cannot publish to "${topic}": ${pendingPublishes} publishes are still waiting for the broker at ${url} ` +
              `(maxPendingPublishes); try again once it is reachable`,
          ),
        );
      }
      const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
      const properties = hasProperties ? { userProperties: { ...userProperties } } : undefined;
      pendingPublishes++;
      const sent = client.publishAsync(topic, body, { qos, properties }).finally(() => pendingPublishes--);
      // Settled by the timeout below when it comes first; its own outcome is then nobody's to observe.
      sent.catch(() => {});
      return withTimeout(
        sent.then(() => {}),
        publishTimeoutMs,
        `Publishing to "${topic}" got no ${qos === 1 ? "PUBACK" : "write"} (it may still be delivered)`,
      );
    },

    async subscribe(topicFilter: string, qos: QoS, handler: Handler): Promise<void> {
      const entry = {
        filter: topicFilter,
        matches: topicFilterOf(topicFilter),
        id: subscriptionIdOf(topicFilter),
        handler,
      };
      // Registered before SUBSCRIBE is sent so messages held since CONNACK can run at once.
      handlers.push(entry);
      for (const wake of waiters) wake();
      try {
        const grants = await withTimeout(
          client.subscribeAsync(
            topicFilter,
            // Retain Handling 2: no retained message at SUBSCRIBE. A persistent session subscribes again at every
            // start, and each time the broker would send the topic's retained message anew, which handlers of a
            // stream of events (a stock delta) would apply again. MQTT 3.1.1 cannot ask this: see `retain`.
            protocolVersion === 5 ? { qos, rh: 2, properties: { subscriptionIdentifier: entry.id } } : { qos },
          ),
          connectTimeoutMs,
          `Subscribing to "${topicFilter}" got no SUBACK`,
        );
        const refused = grants.find((grant) => grant.qos === 128 || grant.qos > 2);
        if (refused) throw new Error(`The broker refused the subscription to "${topicFilter}"`);
      } catch (error) {
        handlers.splice(handlers.indexOf(entry), 1);
        // A SUBACK may still come after the timeout, leaving the broker's session subscribed with no handler here
        // (and mqtt.js would subscribe again after a session loss): take it back, unless another handler uses it.
        if (!handlers.some((h) => h.filter === topicFilter)) unsubscribeLeftover(topicFilter);
        throw error;
      }
    },

    async unsubscribe(topicFilter: string): Promise<void> {
      // Taken off first: a message of this filter still on its way finds no handler of it (it may match another).
      for (let i = handlers.length - 1; i >= 0; i--) if (handlers[i].filter === topicFilter) handlers.splice(i, 1);
      const reply = await withTimeout(
        client.unsubscribeAsync(topicFilter),
        connectTimeoutMs,
        `Unsubscribing from "${topicFilter}" got no UNSUBACK`,
      );
      // MQTT 5 answers 0x11 ("no subscription existed") for a filter this session never had, which is no failure:
      // callers take back a subscription an earlier process may or may not have made. 0x80 and above refuse.
      const codes = (reply as { granted?: number[] } | undefined)?.granted ?? [];
      const refused = codes.find((code) => code >= 0x80);
      if (refused !== undefined) {
        throw new Error(
          `The broker refused to unsubscribe from "${topicFilter}" (reason code 0x${refused.toString(16)})`,
        );
      }
    },

    async ping(timeoutMs: number): Promise<void> {
      if (!client.connected) throw new Error(`MQTT client "${clientId}" is not connected to ${url}`);
      // MQTT has no request/response ping in mqtt.js' API; a QoS 1 publish nobody reads proves the round trip.
      await withTimeout(
        client.publishAsync(`bv/_ping/${clientId}`, "", { qos: 1 }).then(() => {}),
        timeoutMs,
        `The MQTT broker at ${url} did not acknowledge a ping`,
      );
    },

    async close(): Promise<void> {
      closed = true;
      redelivery.close();
      for (const wake of waiters) wake();
      handlers.length = 0;
      // A graceful DISCONNECT; a handler still running keeps the socket half-open, so cut it after a bound.
      try {
        await withTimeout(client.endAsync(false), CLOSE_TIMEOUT_MS, "MQTT close");
      } catch {
        client.stream?.destroy();
      }
    },
  };
}

/** Stale subscriptions (or topics) a bus remembers, so their messages are not held again; the oldest goes first. */
const UNMATCHED_KEYS_MAX = 1_000;
/** A stale subscription is reported once, then at most once per this: a busy one must not flood the log. */
const UNMATCHED_REPORT_INTERVAL_MS = 60_000;

/**
 * A subscription identifier derived from the filter (FNV-1a, 1…2^28-1), so a later process reusing the
 * persistent session recognises the identifiers on messages queued for the earlier one.
 */
function subscriptionIdOf(filter: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(filter)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return (hash % 0x0ffffffe) + 1;
}

function subscriptionIdsOf(packet: mqtt.IPublishPacket): number[] {
  return [packet.properties?.subscriptionIdentifier ?? []].flat();
}

function toMessage(packet: mqtt.IPublishPacket): MqttMessage {
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

function waitForHandler(waiters: Set<() => void>, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      waiters.delete(done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    waiters.add(done);
  });
}
