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

/** Headers of a bridge dead letter besides `x-bv-error`. */
export const SENSOR_DLQ_HEADERS = Object.freeze({
  source: "x-bv-source",
  mqttTopic: "x-bv-mqtt-topic",
  receivedAt: "x-bv-received-at",
});

/** What {@linkcode startSensorBridge} needs. */
export interface SensorBridgeDeps {
  /**
   * The region's bus (`ports.mqtt("bv-sensor-bridge-<region>")`, persistent session). A bus hands over one
   * message at a time (it reads the next only after acknowledging the last), so batches grow only with
   * several connections: pass several buses and they share one subscription (`$share/…`, MQTT 5 brokers
   * only; per-sku order across connections is then not kept).
   */
  readonly mqtt: MqttBus | readonly MqttBus[];
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
  await deps.eventLog.ensureTopics([{ name: topic, partitions: 3 }, { name: deadLetters, partitions: 3 }]);
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
    await batcher.add(await outgoingOf(message, topic, deadLetters));
  };
  // One shared subscription spreads messages over the connections; a single bus subscribes plainly
  // (aedes, the embedded broker, has no shared subscriptions).
  const filter = buses.length > 1
    ? `$share/bv-sensor-bridge-${deps.region}/${SENSOR_TOPIC_FILTER}`
    : SENSOR_TOPIC_FILTER;
  await Promise.all(buses.map((bus) => bus.subscribe(filter, 1, handler)));
  return {
    async close() {
      closed = true;
      await batcher.drain();
    },
  };
}

async function outgoingOf(message: MqttMessage, topic: string, deadLetters: string): Promise<Outgoing> {
  const receivedAt = new Date().toISOString();
  const read = await readSensorMessage(message);
  // Captured here, in the message's own trace context: a batch is published from one caller's context.
  const trace = currentTraceContext() ?? newTraceContext();
  // A fresh context's correlation id IS its trace id, which `traceparent` carries (and `contextFromCarrier`
  // reads it back from there): the header is sent only when it says more. kafkajs encodes every header
  // with buffers of its own: 3 to 10 µs per header and record on the bridge's thread (micro-benchmark).
  const headers: Record<string, string> = { traceparent: formatTraceparent(trace) };
  if (trace.correlationId !== trace.traceId) headers["correlation-id"] = trace.correlationId;
  if (!read.ok) {
    log.warn("sensor message rejected", { mqttTopic: message.topic, reason: read.reason });
    const text = new TextDecoder().decode(message.payload.subarray(0, SENSOR_PAYLOAD_BYTES_MAX));
    return {
      topic: deadLetters,
      record: {
        key: read.sku ?? message.topic.slice(0, 256),
        value: text,
        headers: {
          ...headers,
          [DLQ_HEADERS.error]: read.reason.slice(0, 1_000),
          [SENSOR_DLQ_HEADERS.source]: "mqtt",
          [SENSOR_DLQ_HEADERS.mqttTopic]: message.topic.slice(0, 256),
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
