/**
 * @module
 * The ports of one region, created lazily so a process builds only the adapters it uses. This is the one
 * place where adapters are chosen: the embedded default (PGlite, in-process log/cache/queue, aedes) or the
 * real services (Postgres, Kafka, Redis, RabbitMQ, Mosquitto).
 */
import type { Cache, EventLog, MqttBus, Sql, WorkQueue } from "../../shared/ports/mod.ts";
import type { Config, Region } from "../../shared/config/config.ts";
import { createMemoryCache, createMemoryEventLog, createMemoryWorkQueue } from "../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../shared/adapters/postgres/mod.ts";
import { createKafkaEventLog } from "../../shared/adapters/kafka/mod.ts";
import { createRedisCache } from "../../shared/adapters/redis/mod.ts";
import { createAmqpWorkQueue } from "../../shared/adapters/amqp/mod.ts";
import { createMqttBus } from "../../shared/adapters/mqtt/mod.ts";
import { prefixedEventLog } from "../../shared/ports/prefixed_event_log.ts";
import { tracedEventLog, tracedMqttBus, tracedWorkQueue } from "../../shared/observability/traced_ports.ts";

export interface RegionPorts {
  readonly region: Region;
  readonly mode: "embedded" | "infra";
  sql(): Promise<Sql>;
  cache(): Promise<Cache>;
  eventLog(): Promise<EventLog>;
  workQueue(): Promise<WorkQueue>;
  /** One MQTT client per caller; `clientId` is its session identity. */
  mqtt(clientId: string): Promise<MqttBus>;
  /** Closes every adapter that was created. */
  close(): Promise<void>;
}

type Factories = {
  readonly sql: () => Promise<Sql>;
  readonly cache: () => Promise<Cache>;
  readonly eventLog: () => Promise<EventLog>;
  readonly workQueue: () => Promise<WorkQueue>;
  readonly mqttUrl: string;
  /** 5 for Mosquitto; 4 for the embedded aedes broker, which does not speak MQTT 5. */
  readonly mqttProtocolVersion: 4 | 5;
};

function lazyPorts(region: Region, mode: "embedded" | "infra", factories: Factories): RegionPorts {
  const made = new Map<string, Promise<{ close(): Promise<void> }>>();
  function once<T extends { close(): Promise<void> }>(key: string, make: () => Promise<T>): Promise<T> {
    let value = made.get(key);
    if (!value) {
      value = make();
      made.set(key, value);
      // A failed creation is forgotten so the next caller tries again (the dependency may come up later).
      value.catch(() => made.delete(key));
    }
    return value as Promise<T>;
  }
  return {
    region,
    mode,
    sql: () => once("sql", factories.sql),
    cache: () => once("cache", factories.cache),
    // Messaging ports carry W3C trace context whichever adapter is behind them.
    eventLog: () => once("eventLog", async () => tracedEventLog(await factories.eventLog())),
    workQueue: () => once("workQueue", async () => tracedWorkQueue(await factories.workQueue())),
    mqtt: (clientId) =>
      once(
        `mqtt:${clientId}`,
        async () => {
          const bus = await createMqttBus({
            url: factories.mqttUrl,
            clientId,
            cleanSession: false,
            protocolVersion: factories.mqttProtocolVersion,
          });
          // MQTT 3.1.1 has no user properties, so trace context cannot ride along on the embedded broker.
          return factories.mqttProtocolVersion === 5 ? tracedMqttBus(bus) : bus;
        },
      ),
    async close() {
      const all = await Promise.allSettled([...made.values()]);
      await Promise.allSettled(
        all.flatMap((r) => (r.status === "fulfilled" ? [r.value.close()] : [])),
      );
      made.clear();
    },
  };
}

/** Ports on the real services, for a process named `processName` (used as client id). */
export function realRegionPorts(config: Config, region: Region, processName: string): RegionPorts {
  const endpoints = config.regions[region];
  return lazyPorts(region, "infra", {
    sql: () => Promise.resolve(createPostgresSql({ url: endpoints.pgUrl, maxConnections: 10 })),
    cache: () => Promise.resolve(createRedisCache({ url: config.BV_REDIS_URL, keyPrefix: endpoints.redisPrefix })),
    eventLog: () =>
      Promise.resolve(
        prefixedEventLog(
          createKafkaEventLog({ brokers: [...endpoints.kafkaBrokers], clientId: processName }),
          config.BV_KAFKA_PREFIX,
        ),
      ),
    workQueue: () => Promise.resolve(createAmqpWorkQueue({ url: endpoints.amqpUrl })),
    mqttUrl: config.BV_MQTT_URL,
    mqttProtocolVersion: 5,
  });
}

/** Embedded ports for one region: everything in this process, persisted under `<dataDir>/embedded/<region>`. */
export function embeddedRegionPorts(config: Config, region: Region): RegionPorts {
  const dir = `${config.BV_DATA_DIR}/embedded/${region}`;
  const endpoints = config.regions[region];
  return lazyPorts(region, "embedded", {
    sql: async () => {
      await Deno.mkdir(`${dir}/pg`, { recursive: true });
      return createPgliteSql({ dataDir: `${dir}/pg` });
    },
    cache: () => Promise.resolve(createMemoryCache()),
    eventLog: () =>
      Promise.resolve(createMemoryEventLog({
        dataDir: `${dir}/events`,
        retention: {
          ms: config.BV_EMBEDDED_LOG_RETENTION_MS,
          records: config.BV_EMBEDDED_LOG_RETENTION_RECORDS,
          bytes: config.BV_EMBEDDED_LOG_RETENTION_BYTES,
        },
      })),
    // Journaled like RabbitMQ's durable queues: a webhook delivery waiting for its retry survives a restart.
    workQueue: () => Promise.resolve(createMemoryWorkQueue({ dataDir: `${dir}/queues` })),
    mqttUrl: `mqtt://${config.connectHost}:${endpoints.embeddedMqttPort}`,
    mqttProtocolVersion: 4,
  });
}
