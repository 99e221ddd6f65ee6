/**
 * @module
 * The ports of one region, created lazily so a process builds only the adapters it uses. This is the one
 * place where adapters are chosen: the embedded default (PGlite, in-process log/cache/queue, aedes) or the
 * real services (Postgres, Kafka, Redis, RabbitMQ, Mosquitto).
 *
 * The embedded stores are files one process at a time may open: PGlite has no lock of its own (a second
 * instance on the same directory corrupts it) and the event log compacts its offsets and applies retention
 * when it opens. So the embedded ports hold `<dataDir>/embedded/<region>/region.lock` (a pid lock) from the
 * first file-backed adapter they open until `close()`; a second opener — `deno task start` twice, or an
 * analytics command while the platform runs — is refused with {@linkcode LockHeldError}, and a crashed
 * holder's lock is taken over.
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
import { log } from "../../shared/observability/mod.ts";
import { acquirePidLock, type PidLock } from "../../shared/runtime/pid_lock.ts";

export { LockHeldError } from "../../shared/runtime/pid_lock.ts";

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
  /** Runs once every adapter has closed (the embedded ports release their data directory here). */
  readonly afterClose?: () => Promise<void>;
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
      await factories.afterClose?.();
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
    mqttUrl: endpoints.mqttUrl,
    mqttProtocolVersion: 5,
  });
}

/**
 * Whether both regions' MQTT clients reach ONE broker: in infra mode when BV_EAST_MQTT_URL and BV_WEST_MQTT_URL (both
 * BV_MQTT_URL when unset) name the same one; never embedded, where each region runs its own aedes (scripts/start.ts).
 * A subscription both regions make must then go through one shared-subscription group, or each region gets its copy
 * of every message (the sensor bridges: regional/ecommerce/sensors/README.md). In production each region has its own.
 */
export function mqttBrokerShared(config: Config, mode: "embedded" | "infra"): boolean {
  return mode === "infra" && mqttBrokerOf(config.regions.east.mqttUrl) === mqttBrokerOf(config.regions.west.mqttUrl);
}

/** The transport and default port of each scheme mqtt.js connects with (its connect/tcp, tls and ws builders). */
const MQTT_SCHEMES: Readonly<Record<string, { readonly transport: string; readonly port: string }>> = {
  "mqtt:": { transport: "tcp", port: "1883" },
  "tcp:": { transport: "tcp", port: "1883" },
  "mqtts:": { transport: "tls", port: "8883" },
  "ssl:": { transport: "tls", port: "8883" },
  "tls:": { transport: "tls", port: "8883" },
  // Special schemes: URL already drops 80 and 443, and mqtt.js fills them in again.
  "ws:": { transport: "ws", port: "80" },
  "wss:": { transport: "wss", port: "443" },
};

/** This host's loopback names: each reaches the broker listening on this machine. */
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * The broker a URL names, as `<transport>://<host>:<port>`: scheme, host and port name it, and credentials or a path
 * do not make it another one. Written differently, the same broker must compare equal: `mqtt://127.0.0.1` and
 * `mqtt://LOCALHOST:1883` both reach 1883 on loopback (URL keeps a non-special scheme's host as written, so it is
 * lower-cased here).
 */
export function mqttBrokerOf(url: string): string {
  const parsed = new URL(url);
  const scheme = MQTT_SCHEMES[parsed.protocol];
  const hostname = parsed.hostname.toLowerCase();
  const host = LOOPBACK_HOSTS.has(hostname) ? "loopback" : hostname;
  return `${scheme?.transport ?? parsed.protocol}://${host}:${parsed.port || (scheme?.port ?? "")}`;
}

/**
 * Embedded ports for one region: everything in this process, persisted under `<dataDir>/embedded/<region>`.
 * Opening a file-backed adapter rejects with {@linkcode LockHeldError} while another live process (or other
 * open ports of this one) hold that directory; `close()` releases it, after which it may be opened again.
 */
export function embeddedRegionPorts(config: Config, region: Region): RegionPorts {
  const dir = `${config.BV_DATA_DIR}/embedded/${region}`;
  const endpoints = config.regions[region];
  const lock = directoryLock(dir);
  const locked = <T>(make: () => Promise<T>) => async (): Promise<T> => {
    await lock.hold();
    return await make();
  };
  return lazyPorts(region, "embedded", {
    sql: locked(async () => {
      await Deno.mkdir(`${dir}/pg`, { recursive: true });
      return createPgliteSql({ dataDir: `${dir}/pg` });
    }),
    cache: () => Promise.resolve(createMemoryCache()),
    eventLog: locked(() =>
      Promise.resolve(createMemoryEventLog({
        dataDir: `${dir}/events`,
        retention: {
          ms: config.BV_EMBEDDED_LOG_RETENTION_MS,
          records: config.BV_EMBEDDED_LOG_RETENTION_RECORDS,
          bytes: config.BV_EMBEDDED_LOG_RETENTION_BYTES,
        },
      }))
    ),
    // Journaled like RabbitMQ's durable queues: a webhook delivery waiting for its retry survives a restart.
    workQueue: locked(() => Promise.resolve(createMemoryWorkQueue({ dataDir: `${dir}/queues` }))),
    mqttUrl: `mqtt://${config.connectHost}:${endpoints.embeddedMqttPort}`,
    mqttProtocolVersion: 4,
    afterClose: () => lock.release(),
  });
}

/** The lock of one region's data directory, taken on first use and given back by `release()` (then retaken). */
function directoryLock(dir: string): { hold(): Promise<void>; release(): Promise<void> } {
  let taken: Promise<PidLock> | undefined;
  return {
    async hold() {
      if (!taken) {
        const attempt = Deno.mkdir(dir, { recursive: true }).then(() =>
          acquirePidLock({
            lockFile: `${dir}/region.lock`,
            what: `Data directory "${dir}"`,
            hint:
              "the platform (deno task start) or another command is running with this data directory; stop it first",
            say: (line) => log.warn(line),
          })
        );
        taken = attempt;
        // A refused attempt is forgotten, so a later open tries again (the holder may have stopped).
        attempt.catch(() => {
          if (taken === attempt) taken = undefined;
        });
      }
      await taken;
    },
    async release() {
      const held = taken;
      taken = undefined;
      await (await held?.catch(() => undefined))?.release();
    },
  };
}
