/**
 * @module
 * Session rescue for bridges sharing one `$share` group (linked regions on one Mosquitto). Mosquitto 2.0 deals the
 * group's readings round robin over the members' SESSIONS, connected or not, so while one bridge is down half of the
 * readings queue in its session (delayed until it returns, lost past `max_queued_messages` or at session expiry).
 * Each bridge therefore announces its presence on `bv/sensor-bridges/<group>/<clientId>` (retained `online`, a
 * Last Will and a graceful `offline`: the bus's `presenceTopic`) and watches its peers'. When a peer has been
 * `offline` for `confirmMs`, this opens a second connection WITH THE PEER'S CLIENT ID (Clean Start false: the
 * session and its group subscription are resumed, not replaced) and hands its messages to the bridge's own handler
 * (validation, batching, forwarding, PUBACK after Kafka, dead letters): the readings dealt to the down peer are
 * applied once, now.
 *
 * It never fights the owner: the rescue connection never reconnects. When the peer came back and took its session
 * over (MQTT 5 DISCONNECT 0x8E), the rescue is over, and another starts only after the peer was seen `online` and
 * then `offline` again. A rescue that ended otherwise (a failed connect, a network blip, a Kafka failure that made
 * the bus drop the connection) is tried again while the peer stays `offline`: after `confirmMs`, doubling per try up
 * to {@linkcode SENSOR_RESCUE_RETRY_MS_MAX} (a returning owner says `online` within moments of its CONNACK, so the
 * same confirmation keeps a retry off it). The rescue subscribes to nothing: the peer's session keeps its own
 * subscriptions, and one the broker no longer holds (expired) is ended at once, not revived. A retained `offline`
 * seen at start counts (the peer died while this bridge was down); only the configured peers' client ids are taken
 * (`peerClientIds`, else any `bv-sensor-bridge-…` id), never this bridge's own.
 */
import { log } from "../../../shared/observability/mod.ts";
import { MQTT_PRESENCE, type MqttBus, type MqttMessage } from "../../../shared/ports/mod.ts";
import { sensorSessionRescuedReadings, sensorSessionRescues, sensorSessionRescuesActive } from "./sensor_metrics.ts";

/**
 * @default confirmMs: how long a peer must stay `offline` before its session is taken. Above a live bridge's
 * reconnect after a dropped connection (its will says `offline`, its reconnect 1 s later `online`), so a blip is no
 * takeover; it is also the least delay of the readings dealt to a stopped peer.
 */
export const SENSOR_RESCUE_CONFIRM_MS_DEFAULT = 5_000;
/** Peers one bridge watches at most (a group has one member per linked region); others are ignored, with a warning. */
export const SENSOR_RESCUE_PEERS_MAX = 16;
/** Longest wait between two tries of a rescue that ended without the owner's return. */
export const SENSOR_RESCUE_RETRY_MS_MAX = 60_000;
/** The client ids a rescue may take without `peerClientIds`: the sensor bridges' (background.ts). */
export const SENSOR_BRIDGE_CLIENT_ID_PREFIX = "bv-sensor-bridge-";
/** Where the bridges of share groups announce their presence. */
export const SENSOR_PRESENCE_TOPIC_ROOT = "bv/sensor-bridges";

/** `rescue` of `startSensorBridge`. */
export interface SessionRescueOptions {
  /** @default {@linkcode SENSOR_RESCUE_CONFIRM_MS_DEFAULT} */
  readonly confirmMs?: number;
  /**
   * The client ids of the group's other bridges (background.ts: the other region's): the only sessions this bridge
   * takes over, whoever else publishes a presence under the group. @default any id starting with
   * {@linkcode SENSOR_BRIDGE_CLIENT_ID_PREFIX}
   */
  readonly peerClientIds?: readonly string[];
}

/** The retained presence topic of the bridge `clientId` in share group `group` (its bus's `presenceTopic`). */
export function sensorPresenceTopicOf(group: string, clientId: string): string {
  for (const [what, value] of [["group", group], ["clientId", clientId]]) {
    if (value === "" || /[/+#]/.test(value) || value.includes("\0")) {
      throw new TypeError(`A sensor bridge's presence needs a ${what} without "/", "+", "#" or NUL, got "${value}"`);
    }
  }
  return `${SENSOR_PRESENCE_TOPIC_ROOT}/${group}/${clientId}`;
}

/** The filter of every presence topic of `group`. */
export function sensorPresenceFilterOf(group: string): string {
  // Checked as a topic of some member; then the member's level becomes the wildcard.
  return `${sensorPresenceTopicOf(group, "_").slice(0, -1)}+`;
}

/** What {@linkcode startSessionRescue} needs. */
export interface SessionRescueDeps {
  /** The bridge's own bus: it watches the presence topics, and its settings open the rescue connections. */
  readonly bus: MqttBus;
  /** Client ids of this bridge's own buses: never rescued. */
  readonly ownClientIds: readonly string[];
  readonly group: string;
  /** The group's subscription, as the peers made it (`$share/<group>/iot/inventory/+/delta`). */
  readonly filter: string;
  /** The bridge's own message handler. */
  readonly handler: (message: MqttMessage) => Promise<void>;
  readonly options?: SessionRescueOptions;
}

interface Peer {
  /** A rescue may start at the next `offline`: true until one started, again once `online` was seen. */
  armed: boolean;
  /** Rescues that ended without the owner's return since it was last seen `online`: the next waits longer. */
  retries: number;
  /** The last presence seen. */
  state: string;
  timer?: ReturnType<typeof setTimeout>;
  rescue?: Rescue;
}

interface Rescue {
  readonly startedMs: number;
  bus?: MqttBus;
  handled: number;
  ended: boolean;
}

/** Watches the peers' presence and drains a down peer's session; `stop()` ends every rescue (bounded by bus close). */
export async function startSessionRescue(deps: SessionRescueDeps): Promise<{ stop(): Promise<void> }> {
  const confirmMs = deps.options?.confirmMs ?? SENSOR_RESCUE_CONFIRM_MS_DEFAULT;
  if (!Number.isFinite(confirmMs) || confirmMs < 0) {
    throw new RangeError(`rescue.confirmMs must be ≥ 0, got ${confirmMs}`);
  }
  const presenceFilter = sensorPresenceFilterOf(deps.group);
  const prefix = presenceFilter.slice(0, -1);
  const own = new Set(deps.ownClientIds);
  const allowed = deps.options?.peerClientIds === undefined ? undefined : new Set(deps.options.peerClientIds);
  const peers = new Map<string, Peer>();
  let stopped = false;

  /** `retry`: the close was not the owner's return, so the peer may still be down with readings queued. */
  const end = (peerId: string, peer: Peer, rescue: Rescue, reason: string, retry: boolean): Promise<void> => {
    if (rescue.ended) return Promise.resolve();
    rescue.ended = true;
    if (peer.rescue === rescue) peer.rescue = undefined;
    sensorSessionRescuesActive.set({ peer: peerId }, 0);
    log.info("sensor session rescue ended", {
      peer: peerId,
      group: deps.group,
      reason,
      readings: rescue.handled,
      durationMs: Date.now() - rescue.startedMs,
    });
    if (!stopped) {
      if (retry) {
        peer.armed = true;
        peer.retries++;
      }
      // Also an `offline` that came while this rescue was still open (the owner back and down again): its schedule
      // found the rescue in place and did nothing.
      if (peer.state === MQTT_PRESENCE.offline) schedule(peerId, peer);
    }
    // Closed already when the broker ended it; else (stop) a DISCONNECT that leaves the peer's session in place.
    return rescue.bus?.close().catch(() => {}) ?? Promise.resolve();
  };

  const start = async (peerId: string, peer: Peer) => {
    peer.timer = undefined;
    if (stopped || peer.rescue || peer.state !== MQTT_PRESENCE.offline) return;
    peer.armed = false;
    const rescue: Rescue = { startedMs: Date.now(), handled: 0, ended: false };
    peer.rescue = rescue;
    sensorSessionRescues.inc({ peer: peerId });
    sensorSessionRescuesActive.set({ peer: peerId }, 1);
    log.info("sensor session rescue started", { peer: peerId, group: deps.group, confirmMs });
    const handle = async (message: MqttMessage) => {
      await deps.handler(message);
      rescue.handled++;
      sensorSessionRescuedReadings.inc({ peer: peerId });
    };
    try {
      // No SUBSCRIBE: the session keeps the peer's subscriptions (the group's readings, and the group's presence,
      // whose queued messages must not stall the readings behind them). Subscribing would add what the peer's
      // session did not have (a plain bridge's, after an unlink) or revive an expired one as a `$share` member.
      const bus = await deps.bus.connectAs(peerId, {
        handlers: [{ topicFilter: presenceFilter, handler: () => Promise.resolve() }, {
          topicFilter: deps.filter,
          handler: handle,
        }],
        onClosed: (reason, { takenOver }) => end(peerId, peer, rescue, reason, !takenOver),
      });
      if (bus === undefined) {
        // The broker holds no session of the peer (expired): nothing is queued for it, and it is no group member.
        // Not tried again before the peer is seen `online` (it then has a session again).
        return await end(peerId, peer, rescue, "the peer has no session", false);
      }
      rescue.bus = bus;
      // Ended while connecting (the bridge stopped): `end` had no connection to close yet.
      if (rescue.ended) return await bus.close().catch(() => {});
      // The owner said `online` while this connected: it has its session, or is about to take it back.
      if (peer.state !== MQTT_PRESENCE.offline) await end(peerId, peer, rescue, "the peer came back", false);
    } catch (error) {
      log.warn("sensor session rescue failed", { peer: peerId, group: deps.group, error: String(error) });
      await end(peerId, peer, rescue, "failed", true);
    }
  };

  /** Rescues being started, awaited by `stop()` (each bounded by the bus's connect timeout). */
  const starting = new Set<Promise<void>>();
  const schedule = (peerId: string, peer: Peer) => {
    if (peer.armed && peer.timer === undefined && peer.rescue === undefined) {
      const delayMs = Math.max(confirmMs, Math.min(confirmMs * 2 ** peer.retries, SENSOR_RESCUE_RETRY_MS_MAX));
      peer.timer = setTimeout(() => {
        const started = start(peerId, peer).finally(() => starting.delete(started));
        starting.add(started);
      }, delayMs);
    }
  };
  const isPeer = (id: string) =>
    !own.has(id) && (allowed === undefined ? id.startsWith(SENSOR_BRIDGE_CLIENT_ID_PREFIX) : allowed.has(id));

  const onPresence = (message: MqttMessage): Promise<void> => {
    const peerId = message.topic.slice(prefix.length);
    if (stopped || !message.topic.startsWith(prefix) || peerId.includes("/") || !isPeer(peerId)) {
      return Promise.resolve();
    }
    let peer = peers.get(peerId);
    if (peer === undefined) {
      if (peers.size >= SENSOR_RESCUE_PEERS_MAX) {
        log.warn("sensor bridge presence ignored: too many peers", { peer: peerId, group: deps.group });
        return Promise.resolve();
      }
      // Armed: a retained `offline` at start is a peer that went down while this bridge was away.
      peer = { armed: true, retries: 0, state: "" };
      peers.set(peerId, peer);
    }
    peer.state = new TextDecoder().decode(message.payload.subarray(0, 16));
    if (peer.state === MQTT_PRESENCE.offline) return Promise.resolve(schedule(peerId, peer));
    clearTimeout(peer.timer);
    peer.timer = undefined;
    if (peer.state === MQTT_PRESENCE.online) {
      peer.armed = true;
      peer.retries = 0;
    }
    return Promise.resolve();
  };

  // QoS 1 on the persistent session: a change while this bus reconnects is queued, not missed. Retained asked for:
  // the current presence of every peer, including one that died while this bridge was down.
  await deps.bus.subscribe(presenceFilter, 1, onPresence, { retained: true });
  return {
    async stop() {
      stopped = true;
      const ending: Promise<void>[] = [];
      for (const [peerId, peer] of peers) {
        clearTimeout(peer.timer);
        peer.timer = undefined;
        if (peer.rescue) ending.push(end(peerId, peer, peer.rescue, "bridge stopped", false));
      }
      await Promise.all([...ending, ...starting]);
    },
  };
}
