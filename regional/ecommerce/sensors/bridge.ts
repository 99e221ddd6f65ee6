/**
 * @module
 * The sensor bridge: MQTT `iot/inventory/{sku}/delta` (QoS 1, persistent session) → Kafka
 * `iot.inventory.sensor.delta_received.v1` (key = sku). A message is acknowledged to the broker only after
 * Kafka acknowledged its record (the bus sends PUBACK when the handler resolves), so nothing acknowledged is
 * lost: a crash before that leaves it in the session and the broker delivers it again. A malformed message
 * is not dropped either: it goes to `<topic>.dlq` with the reason in `x-bv-error`, and is then acknowledged.
 */
import type { Envelope, EventDefinition } from "../../../shared/contracts/envelope.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { currentTraceContext, formatTraceparent, log, newTraceContext } from "../../../shared/observability/mod.ts";
import { DLQ_HEADERS, dlqTopicOf, type EventLog, type MqttBus, type MqttMessage } from "../../../shared/ports/mod.ts";
import { createBatcher } from "./batcher.ts";
import {
  eventIdOf,
  type ReadSensorMessage,
  readSensorMessage,
  SENSOR_PAYLOAD_BYTES_MAX,
  SENSOR_TOPIC_FILTER,
  type SensorDelta,
} from "./sensor_delta.ts";

/** The payload of `iot.inventory.sensor.delta_received.v1`. */
type SensorDeltaReceived = typeof sensorDeltaReceived extends EventDefinition<infer P> ? P : never;

/** The producer name on every envelope the bridge writes. */
export const SENSOR_BRIDGE_PRODUCER = "sensor-bridge";
/** @default batchMax: records per Kafka publish. */
export const SENSOR_BRIDGE_BATCH_MAX_DEFAULT = 200;
/** @default lingerMs: how long a batch waits for more messages when some connections are idle. */
export const SENSOR_BRIDGE_LINGER_MS_DEFAULT = 5;
/**
 * How long one batch keeps retrying Kafka before giving up (its messages then stay unacknowledged and come
 * back after the next reconnect). Below the MQTT keepalive (30 s), which a blocked handler would outlast.
 */
export const SENSOR_BRIDGE_PUBLISH_DEADLINE_MS = 20_000;
const PUBLISH_RETRY_DELAY_MS_MIN = 100;
const PUBLISH_RETRY_DELAY_MS_MAX = 2_000;

/**
 * How long a message waits for the Kafka topics at start before it is left unacknowledged for the bus to get
 * again after a reconnect (1 s, doubling). Short: while a handler waits the bus reads no other packet, the
 * SUBACK of the bridge's own subscribe() (bounded by the bus's `connectTimeoutMs`, 5 s) included.
 */
const SENSOR_BRIDGE_TOPICS_WAIT_MS = 1_000;

/** Headers of a bridge dead letter besides `x-bv-error`. */
export const SENSOR_DLQ_HEADERS = Object.freeze({
  source: "x-bv-source",
  mqttTopic: "x-bv-mqtt-topic",
  receivedAt: "x-bv-received-at",
});

/** Longest `x-bv-mqtt-topic` (and log field) a bridge dead letter carries; an MQTT topic may be 64 KiB. */
const SENSOR_DLQ_TOPIC_CHARS_MAX = 256;
/** Longest `x-bv-error` (and log field) a bridge dead letter carries. */
const SENSOR_DLQ_REASON_CHARS_MAX = 1_000;

/** What {@linkcode startSensorBridge} needs. */
export interface SensorBridgeDeps {
  /**
   * The region's bus (`ports.mqtt("bv-sensor-bridge-<region>")`, persistent session). A bus hands over one
   * message at a time (it reads the next only after acknowledging the last), so batches grow only with
   * several connections: pass several buses and they share one subscription (`$share/…`, MQTT 5 brokers
   * only; per-sku order across connections is then not kept).
   */
  readonly mqtt: MqttBus | readonly MqttBus[];
  /**
   * Subscribe through the shared-subscription group `$share/<shareGroup>/iot/inventory/+/delta` (the broker must
   * support it: Mosquitto does, aedes does not). Set when several regions' bridges connect to ONE broker, with the
   * same group in every region: each reading then reaches exactly one bridge (a replica's consumer forwards it to
   * the writer), where a plain subscription would give every region its own copy, applied once per region.
   * Unset: `bv-sensor-bridge-<region>` when several buses are passed, else a plain subscription.
   */
  readonly shareGroup?: string;
  /**
   * With a plain subscription: the group this session subscribes through when it does share (background.ts: the
   * regions linked on one broker). A persistent session keeps its subscriptions across processes, so the bridge
   * takes `$share/<group>/…` back: a region that shared before would otherwise get the group's readings beside its own.
   */
  readonly formerShareGroup?: string;
  readonly eventLog: EventLog;
  readonly region: string;
  /** Records per Kafka publish. @default {@linkcode SENSOR_BRIDGE_BATCH_MAX_DEFAULT} */
  readonly batchMax?: number;
  /** @default {@linkcode SENSOR_BRIDGE_LINGER_MS_DEFAULT} */
  readonly lingerMs?: number;
  /** @default {@linkcode SENSOR_BRIDGE_PUBLISH_DEADLINE_MS} */
  readonly publishDeadlineMs?: number;
}

export interface Outgoing {
  readonly topic: string;
  readonly record: { key: string; value: string; headers: Record<string, string> };
}

/** Subscribes and forwards; `close()` stops forwarding (later messages stay in the session) and drains. */
export async function startSensorBridge(deps: SensorBridgeDeps): Promise<{ close(): Promise<void> }> {
  const buses = Array.isArray(deps.mqtt) ? deps.mqtt as readonly MqttBus[] : [deps.mqtt as MqttBus];
  if (buses.length === 0) throw new TypeError("startSensorBridge() needs at least one MQTT bus");
  const topic = sensorDeltaReceived.eventType;
  const deadLetters = dlqTopicOf(topic);
  // Asked for now but awaited only by the handler: the bus is connected, and a persistent session's queued
  // readings arrive at once; the bus holds them only `unmatchedHoldMs` (5 s) for subscribe(), after which it
  // acknowledges them unhandled. A Kafka slow to answer must not cost those readings, so subscribe() comes first.
  const topicsReady = deps.eventLog.ensureTopics([{ name: topic, partitions: 3 }, {
    name: deadLetters,
    partitions: 3,
  }]);
  let topicsMade = false;
  // Observed below (start fails with it) and in the handler (the message stays unacknowledged).
  topicsReady.then(() => topicsMade = true, () => {});
  const publishDeadlineMs = deps.publishDeadlineMs ?? SENSOR_BRIDGE_PUBLISH_DEADLINE_MS;

  const batcher = createBatcher<Outgoing>({
    batchMax: deps.batchMax ?? SENSOR_BRIDGE_BATCH_MAX_DEFAULT,
    lingerMs: deps.lingerMs ?? SENSOR_BRIDGE_LINGER_MS_DEFAULT,
    feeders: buses.length,
    flush: (items) => publishBatch(deps.eventLog, items, publishDeadlineMs),
  });
  let closed = false;
  const handler = async (message: MqttMessage): Promise<void> => {
    // Thrown, not swallowed: the message stays unacknowledged and the next session gets it.
    if (closed) throw new Error("The sensor bridge is closed; the message stays in the session");
    if (!topicsMade) await topicsMadeWithin(topicsReady, SENSOR_BRIDGE_TOPICS_WAIT_MS);
    await batcher.add(await outgoingOf(message, topic, deadLetters));
  };
  // One shared subscription spreads messages over the connections (and over the regions sharing a broker); a
  // single bus of its own broker subscribes plainly (aedes, the embedded broker, has no shared subscriptions).
  const group = deps.shareGroup ?? (buses.length > 1 ? `bv-sensor-bridge-${deps.region}` : undefined);
  const filter = group === undefined ? SENSOR_TOPIC_FILTER : `$share/${group}/${SENSOR_TOPIC_FILTER}`;
  // The other form of the filter, which the session may keep from an earlier process (a deploy, the regions linked
  // or unlinked): left there, it gives the session a second copy of every reading.
  const former = group !== undefined
    ? [SENSOR_TOPIC_FILTER]
    : deps.formerShareGroup === undefined
    ? []
    : [`$share/${deps.formerShareGroup}/${SENSOR_TOPIC_FILTER}`];
  const subscribe = async (bus: MqttBus) => {
    await bus.subscribe(filter, 1, handler);
    // Only after the new subscription: with neither, a reading published in between would be queued for no one. A
    // reading published in that window comes twice, once per subscription (without `seq`/message-id, applied
    // twice); readings queued on the old one while the bridge was down come once, routed to `handler` by topic.
    for (const stale of former) await bus.unsubscribe(stale);
  };
  try {
    await Promise.all(buses.map(subscribe));
    await topicsReady;
  } catch (error) {
    closed = true;
    throw error;
  }
  return {
    async close() {
      closed = true;
      await batcher.drain();
    },
  };
}

/** Resolves once `made` did within `waitMs`; rejects (the message stays in the session) when it failed or is late. */
async function topicsMadeWithin(made: Promise<void>, waitMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), waitMs));
  try {
    if (await Promise.race([made, late]) === "late") {
      throw new Error(
        `The Kafka topics of the sensor bridge are not made yet (${waitMs} ms); the message stays in the session`,
      );
    }
  } finally {
    clearTimeout(timer);
  }
}

async function outgoingOf(message: MqttMessage, topic: string, deadLetters: string): Promise<Outgoing> {
  const receivedAt = new Date().toISOString();
  // A retained message is the topic's last reading, sent again to every new subscription: applied, it would
  // change the stock at each bridge start. MQTT 5 subscriptions ask for none (the bus's Retain Handling 2), so
  // this catches a 3.1.1 broker (aedes), which cannot be asked. A retained reading is dead-lettered, not dropped:
  // the device's firmware publishes with the retain flag, which is the thing to fix.
  const read = message.retain ? retainedRefusal(message.topic) : await readSensorMessage(message);
  // Captured here, in the message's own trace context: a batch is published from one caller's context.
  const trace = currentTraceContext() ?? newTraceContext();
  // A fresh context's correlation id IS its trace id, which `traceparent` carries (and `contextFromCarrier`
  // reads it back from there): the header is sent only when it says more. kafkajs encodes every header
  // with buffers of its own: 3 to 10 µs per header and record on the bridge's thread (micro-benchmark).
  const headers: Record<string, string> = { traceparent: formatTraceparent(trace) };
  if (trace.correlationId !== trace.traceId) headers["correlation-id"] = trace.correlationId;
  if (!read.ok) {
    // Bounded like the dead letter's headers: a topic may be 64 KiB, and this line is written per message.
    log.warn("sensor message rejected", {
      mqttTopic: message.topic.slice(0, SENSOR_DLQ_TOPIC_CHARS_MAX),
      reason: read.reason.slice(0, SENSOR_DLQ_REASON_CHARS_MAX),
    });
    const text = new TextDecoder().decode(message.payload.subarray(0, SENSOR_PAYLOAD_BYTES_MAX));
    return {
      topic: deadLetters,
      record: {
        key: read.sku ?? message.topic.slice(0, SENSOR_DLQ_TOPIC_CHARS_MAX),
        value: text,
        headers: {
          ...headers,
          [DLQ_HEADERS.error]: read.reason.slice(0, SENSOR_DLQ_REASON_CHARS_MAX),
          [SENSOR_DLQ_HEADERS.source]: "mqtt",
          [SENSOR_DLQ_HEADERS.mqttTopic]: message.topic.slice(0, SENSOR_DLQ_TOPIC_CHARS_MAX),
          [SENSOR_DLQ_HEADERS.receivedAt]: receivedAt,
        },
      },
    };
  }
  const envelope = sensorEnvelopeOf(read.value, receivedAt, trace, await eventIdOf(read.value.messageId));
  return {
    topic,
    record: { key: read.value.sku, value: JSON.stringify(envelope), headers: { ...headers, "event-type": topic } },
  };
}

/** The refusal of a retained message, with its sku when the topic names one. */
function retainedRefusal(topic: string): ReadSensorMessage {
  const sku = /^iot\/inventory\/([^/]+)\/delta$/.exec(topic)?.[1];
  return {
    ok: false,
    reason: "Retained message: the broker sends it again to every new subscription, so it is not applied; " +
      "publish sensor readings without the retain flag",
    ...(sku !== undefined && sku.length <= SENSOR_DLQ_TOPIC_CHARS_MAX ? { sku } : {}),
  };
}

/**
 * The envelope `createEnvelope(sensorDeltaReceived, …)` builds, without its zod parse of the payload: every
 * field was just read and checked by `readSensorMessage` (and the id and time are made here), so the parse
 * could only return its input (it doubled this step's cost, ~2 µs a message). `bridge_test.ts` holds the
 * two equal.
 */
export function sensorEnvelopeOf(
  delta: SensorDelta,
  receivedAt: string,
  trace: { readonly traceId: string; readonly correlationId: string },
  eventId: string,
): Envelope<SensorDeltaReceived> {
  const { messageId, sku, reason } = delta;
  return {
    eventId,
    eventType: sensorDeltaReceived.eventType,
    occurredAt: receivedAt,
    producer: SENSOR_BRIDGE_PRODUCER,
    traceId: trace.traceId,
    correlationId: trace.correlationId,
    schemaVersion: sensorDeltaReceived.schemaVersion,
    tenantId: "default",
    partitionKey: sku,
    payload: { messageId, sku, delta: delta.delta, reason, receivedAt },
  };
}

/**
 * Publishes a batch (one call per topic), retrying with capped backoff until the deadline; resolves with
 * each item's outcome. A topic that could not be written fails only its own items: a reading already on
 * the delta topic is acknowledged even when the dead letters of the same batch could not be stored, or its
 * redelivery would be forwarded again — and a reading without `seq` or `message-id` gets a new id each time
 * it is received, so it would be applied twice.
 */
export async function publishBatch(
  eventLog: EventLog,
  items: readonly Outgoing[],
  deadlineMs: number,
): Promise<unknown[]> {
  const byTopic = new Map<string, Outgoing["record"][]>();
  for (const { topic, record } of items) {
    const records = byTopic.get(topic) ?? [];
    records.push(record);
    byTopic.set(topic, records);
  }
  const failedTopics = new Map<string, unknown>();
  const giveUpAt = Date.now() + deadlineMs;
  for (const [topic, records] of byTopic) {
    let delayMs = PUBLISH_RETRY_DELAY_MS_MIN;
    for (;;) {
      try {
        await eventLog.publish(topic, records);
        break;
      } catch (error) {
        // A retry may duplicate records Kafka had already taken; the consumer applies a message id once.
        if (Date.now() + delayMs > giveUpAt) {
          failedTopics.set(topic, error);
          break;
        }
        log.warn("sensor batch publish failed; retrying", { topic, records: records.length, error: String(error) });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        delayMs = Math.min(delayMs * 2, PUBLISH_RETRY_DELAY_MS_MAX);
      }
    }
  }
  return items.map((item) => failedTopics.get(item.topic));
}
