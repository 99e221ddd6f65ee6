/**
 * @module
 * The e-commerce deployable's background work — the outbox relay, reservation expiry, the cache and revenue
 * projections, the sensor bridge and delta consumer, the housekeeping purges — separate from what serves
 * requests and pushes to connected clients. On the real services it runs in a worker thread of the process
 * (`background_thread.ts`), so the relay and the consumers use the machine's other core instead of queueing
 * behind requests on the serving event loop; embedded, the in-process ports are not shareable with another
 * thread and it runs beside the routes. Nothing here holds state a request or a socket needs.
 */
import type { Config, Region } from "../../shared/config/config.ts";
import { log } from "../../shared/observability/mod.ts";
import type { Lifecycle } from "../../shared/runtime/mod.ts";
import type { Cache, EventLog, MqttBus, Sql } from "../../shared/ports/mod.ts";
import { purgeProcessedEvents, startOutboxRelay } from "./outbox/mod.ts";
import { startProductCacheInvalidation } from "./catalog/mod.ts";
import {
  releaseReservation,
  startInventoryCacheProjection,
  startReleaseOnCancel,
  startReservationExpiry,
} from "./inventory/mod.ts";
import { purgeExpiredIdempotencyKeys, startOrderLapse } from "./orders/mod.ts";
import { createWriterRoleReader } from "./orders/writer/mod.ts";
import {
  createSensorBatchApplier,
  internalSigningKeyOf,
  type SensorSharing,
  sensorSharingOf,
  startSensorBridge,
  startSensorDeltaConsumer,
} from "./sensors/mod.ts";
import { startGraphqlCacheInvalidation } from "./graphql/mod.ts";
import { startRevenueProjection } from "./analytics/mod.ts";
import { purgeDeliveryAttempts } from "./webhooks/mod.ts";
import { mqttBrokerShared, type RegionPorts } from "../wiring/region_ports.ts";

/** Housekeeping (expired idempotency keys, old consumer markers) runs this often, each purge bounded. */
const HOUSEKEEPING_INTERVAL_MS = 60_000;

export interface EcommerceBackgroundDeps {
  readonly config: Config;
  readonly region: Region;
  readonly sql: Sql;
  readonly cache: Cache;
  readonly eventLog: EventLog;
  /** One MQTT client per session identity (the sensor bridge's). */
  readonly mqtt: (clientId: string) => Promise<MqttBus>;
  /**
   * How the sensor bridge subscribes (`sensorSharingOf`): through the regions' shared-subscription group when both
   * connect to one broker and are linked, so each reading reaches one region; else plainly. Unset: plainly.
   */
  readonly sensorSharing?: SensorSharing;
  /** Everything started here is closed by it, in reverse order. */
  readonly lifecycle: Lifecycle;
  /** `<service>-<region>`, for the lifecycle's names. */
  readonly name: string;
}

export interface EcommerceBackground {
  /** Wakes the outbox relay (after a transaction that appended to the outbox committed). */
  nudgeOutbox(): void;
}

/** {@linkcode startEcommerceBackground} on the ports of `ports` (the deployable's own, or the thread's). */
export async function startEcommerceBackgroundOn(
  ports: RegionPorts,
  context: Pick<EcommerceBackgroundDeps, "config" | "region" | "name" | "lifecycle">,
): Promise<EcommerceBackground> {
  const [sql, cache, eventLog] = await Promise.all([ports.sql(), ports.cache(), ports.eventLog()]);
  // Named after both regions' databases, like the bridge's session after its own: the same in east and west, and
  // another platform sharing the broker (a test run's) has its own group and gets its own copy.
  const { east, west } = context.config.regions;
  const brokerShared = mqttBrokerShared(context.config, ports.mode);
  // Linked = the region's order_writer row exists: start:infra links the regions before the services start, so it is
  // there by now. Read once: a region linked or unlinked later (a DR drill) subscribes anew at its next start.
  const linked = brokerShared && (await createWriterRoleReader(sql).current()) !== undefined;
  const sensorSharing = sensorSharingOf({
    brokerShared,
    linked,
    group: `bv-sensor-bridge-${east.pgDatabase}-${west.pgDatabase}`,
  });
  return await startEcommerceBackground({
    ...context,
    sql,
    cache,
    eventLog,
    mqtt: (id) => ports.mqtt(id),
    sensorSharing,
  });
}

/** Starts the background work; migrations and topics must exist (the deployable made them first). */
export async function startEcommerceBackground(deps: EcommerceBackgroundDeps): Promise<EcommerceBackground> {
  const { config, region, sql, cache, eventLog, lifecycle, name } = deps;
  const relay = startOutboxRelay({ sql, eventLog });
  lifecycle.onStop(`${name} outbox relay`, () => relay.stop());
  const nudgeOutbox = () => relay.nudge();

  // Single writer (orders/writer): a replica region's background writers of the replicated tables stand down.
  const role = createWriterRoleReader(sql);
  const writerElsewhere = async () => {
    const current = await role.current();
    return current && current.writerRegion !== current.localRegion ? current.writerRegion : undefined;
  };
  const isReplica = async () => (await writerElsewhere()) !== undefined;
  const expiry = startReservationExpiry({ sql, nudgeOutbox, paused: isReplica });
  lifecycle.onStop(`${name} reservation expiry`, () => expiry.stop());
  // Orders whose stock hold lapsed are canceled (they stayed payable, or PENDING forever after a crash).
  // Inventory is in this deployable and database: the release is its own function, not a gRPC round trip.
  const lapse = startOrderLapse({
    sql,
    nudgeOutbox,
    reservationTtlSec: config.BV_RESERVATION_TTL_SEC,
    paused: isReplica,
    release: (orderId) =>
      releaseReservation(sql, orderId).then(() => {}, (error) =>
        // The canceled event's consumer (below) releases it then.
        log.warn("could not release the stock of a lapsed order", { orderId, error: String(error) })),
  });
  lifecycle.onStop(`${name} order lapse`, () => lapse.stop());
  // Cache projections: stable group ids per region, so a restart resumes where it left off.
  const projections = {
    "product-cache": startProductCacheInvalidation,
    "inventory-cache": startInventoryCacheProjection,
    "graphql-cache": startGraphqlCacheInvalidation,
  };
  // Consumers leave their groups at the same time on stop: one after another, each close waits out its
  // fetch in flight (up to the event log's fetch wait) and together they overran the shutdown grace.
  const consumers: { close(): Promise<void> }[] = [];
  lifecycle.onStop(`${name} consumers`, async () => {
    await Promise.allSettled(consumers.map((consumer) => consumer.close()));
  });
  for (const [projection, start] of Object.entries(projections)) {
    consumers.push(await start({ eventLog, cache, groupId: `ecommerce-${region}.${projection}` }));
  }
  // Replicated orders (a writer role): the projection also reads the other regions' MirrorMaker copies.
  consumers.push(await startRevenueProjection({ sql, eventLog, region, writerRole: role }));
  // Every canceled order's stock is released from its event: the order service's own release after the
  // cancel is best effort, and a paid order's (confirmed) reservation never expires on its own.
  consumers.push(
    await startReleaseOnCancel({
      sql,
      eventLog,
      region,
      nudgeOutbox,
      groupId: `ecommerce-${region}.inventory-releases`,
    }),
  );
  // Inventory sensors: MQTT (QoS 1, persistent session) → Kafka → stock adjustments applied once.
  const sensorDeltas = await startSensorDeltaConsumer({
    sql,
    eventLog,
    nudgeOutbox,
    region,
    // In a replica region the batch is applied by the writer region's service (sensors/forward_batch.ts).
    apply: createSensorBatchApplier({
      sql,
      region,
      writerElsewhere,
      serviceUrlOf: (r) =>
        r === "east" || r === "west"
          ? `http://${config.connectHost}:${config.regions[r].servicePorts.ecommerce}`
          : undefined,
      timeoutMs: config.BV_CALL_TIMEOUT_MS,
      signingKey: internalSigningKeyOf(config),
    }),
  });
  consumers.push(sensorDeltas);
  const sensorBridge = await startSensorBridge({
    // The session identity follows the region's database, so two platforms sharing one broker (a
    // developer's and a test run's) do not take over each other's persistent session.
    mqtt: await deps.mqtt(`bv-sensor-bridge-${config.regions[region].pgDatabase}`),
    // One broker for both linked regions (infra with one BV_MQTT_URL): each reading goes to one region's bridge.
    ...deps.sensorSharing,
    eventLog,
    region,
  });
  consumers.push(sensorBridge);
  // Idempotency keys live 24 h and consumer markers 9 days; both are purged in bounded batches, one run at a
  // time (a run that outlasts the interval is not started again beside itself).
  let housekeeping: Promise<unknown> = Promise.resolve();
  let housekeepingRunning = false;
  const housekeepingTimer = setInterval(() => {
    if (housekeepingRunning) return;
    housekeepingRunning = true;
    housekeeping = runHousekeeping(sql, isReplica, config.BV_WEBHOOK_ATTEMPTS_RETENTION_DAYS * 24 * 60 * 60_000)
      .finally(() => housekeepingRunning = false);
  }, HOUSEKEEPING_INTERVAL_MS);
  lifecycle.onStop(`${name} housekeeping`, async () => {
    clearInterval(housekeepingTimer);
    await housekeeping;
  });
  return { nudgeOutbox };
}

async function runHousekeeping(
  sql: Sql,
  isReplica: () => Promise<boolean>,
  webhookAttemptsRetainMs: number,
): Promise<void> {
  // A replica's keys are the writer's (replicated); the writer's purge deletes them in both.
  await (isReplica().then((replica) => replica ? 0 : purgeExpiredIdempotencyKeys(sql))).catch((error) =>
    log.warn("idempotency key purge failed; will retry", { error: String(error), intervalMs: HOUSEKEEPING_INTERVAL_MS })
  );
  // Markers are the region's own (not replicated): each region purges its own.
  await purgeProcessedEvents(sql).catch((error) =>
    log.warn("processed_events purge failed; will retry", {
      error: String(error),
      intervalMs: HOUSEKEEPING_INTERVAL_MS,
    })
  );
  // Webhook delivery attempts replicate with the subscriptions (single writer): the writer's purge deletes in both.
  const purgeAttempts = () => purgeDeliveryAttempts(sql, webhookAttemptsRetainMs);
  await (isReplica().then((replica) => replica ? 0 : purgeAttempts())).catch((error) =>
    log.warn("webhook_delivery_attempts purge failed; will retry", {
      error: String(error),
      intervalMs: HOUSEKEEPING_INTERVAL_MS,
    })
  );
}
