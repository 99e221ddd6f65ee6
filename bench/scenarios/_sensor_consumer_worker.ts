/**
 * @module
 * Worker side of `mqtt_sensor_ingest`'s subject: the inventory half of the pipeline (the sensor delta
 * consumer and the outbox relay, with their own Kafka client and database pool) on a thread of its own, so
 * it and the sensor bridge (main thread) use both cores, as two deployables would. Answers "ready" once the
 * consumer joined its group, and "closed" after a "close" message let the batch in flight finish.
 */
import { createKafkaEventLog } from "../../shared/adapters/kafka/mod.ts";
import { createPostgresSql } from "../../shared/adapters/postgres/mod.ts";
import { prefixedEventLog } from "../../shared/ports/prefixed_event_log.ts";
import { startOutboxRelay } from "../../regional/ecommerce/outbox/mod.ts";
import { startSensorDeltaConsumer } from "../../regional/ecommerce/sensors/mod.ts";

/** What the main thread asks for. */
export interface SensorConsumerRequest {
  readonly databaseUrl: string;
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** The run's topic prefix (see `prefixedEventLog`). */
  readonly topicPrefix: string;
  readonly region: string;
}

export type SensorConsumerReply = { readonly state: "ready" | "closed" } | { readonly error: string };

/** Connections of the consumer's pool: up to 3 partitions apply at once, plus the relay. */
const SQL_CONNECTIONS_MAX = 4;

const scope = self as unknown as {
  postMessage(message: SensorConsumerReply): void;
  onmessage: ((event: MessageEvent<SensorConsumerRequest | "close">) => void) | null;
};

let close: (() => Promise<void>) | undefined;

scope.onmessage = async (event) => {
  try {
    if (event.data === "close") {
      await close?.();
      scope.postMessage({ state: "closed" });
      return;
    }
    close = await start(event.data);
    scope.postMessage({ state: "ready" });
  } catch (error) {
    scope.postMessage({ error: error instanceof Error ? error.message : String(error) });
  }
};

async function start(request: SensorConsumerRequest): Promise<() => Promise<void>> {
  const sql = createPostgresSql({ url: request.databaseUrl, maxConnections: SQL_CONNECTIONS_MAX });
  const kafkaLog = createKafkaEventLog({
    brokers: request.brokers,
    clientId: request.clientId,
    logLevel: "error",
    consumer: { maxWaitTimeMs: 100, heartbeatIntervalMs: 1_000, sessionTimeoutMs: 10_000, closeTimeoutMs: 5_000 },
  });
  const eventLog = prefixedEventLog(kafkaLog, request.topicPrefix);
  const relay = startOutboxRelay({ sql, eventLog });
  try {
    const consumer = await startSensorDeltaConsumer({
      sql,
      eventLog,
      nudgeOutbox: () => relay.nudge(),
      region: request.region,
      from: "latest",
    });
    return async () => {
      await consumer.close();
      await relay.stop();
      await kafkaLog.close();
      await sql.close();
    };
  } catch (error) {
    await relay.stop();
    await kafkaLog.close();
    await sql.close();
    throw error;
  }
}
