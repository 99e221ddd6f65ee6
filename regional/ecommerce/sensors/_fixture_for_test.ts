/**
 * @module
 * Test support for the sensor tests: a migrated database with products, a simulated sensor fleet that
 * behaves like a device (QoS 1, re-sends the same reading until the broker acknowledges it), a private
 * Mosquitto that a test may restart (a process the test started itself, so the shared broker other
 * engineers use is never touched), and bounded polling.
 */
import { createMqttBus } from "../../../shared/adapters/mqtt/mod.ts";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import type { EventLog, IncomingRecord, MqttBus, Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { catalogMigrations } from "../catalog/mod.ts";
import { applyStockAdjustment, inventoryMigrations } from "../inventory/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";

let deltaOffset = 0;

/** A `sensor.delta.received` record as the bridge writes it, at the next offset of partition 0. */
export function deltaRecord(sku: string, messageId: string, delta: number): IncomingRecord {
  const envelope = createEnvelope(sensorDeltaReceived, {
    messageId,
    sku,
    delta,
    reason: "SENSOR",
    receivedAt: new Date().toISOString(),
  }, { producer: "sensor-bridge", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "test" });
  return {
    topic: sensorDeltaReceived.eventType,
    partition: 0,
    offset: String(deltaOffset++),
    key: sku,
    value: JSON.stringify(envelope),
    headers: {},
    timestampMs: Date.now(),
  };
}

export async function migrateForSensors(sql: Sql): Promise<void> {
  await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...inventoryMigrations]);
}

/** Inserts a product (the catalog's table) with `onHand` units counted by an admin. */
export async function productWithStock(sql: Sql, onHand: number): Promise<{ id: string; sku: string }> {
  const id = crypto.randomUUID();
  const sku = uniqueName("SNS").toUpperCase().slice(0, 40);
  await sql.query`
    insert into products (id, sku, name, category, price, currency)
    values (${id}, ${sku}, ${"Sensor test product"}, ${"test"}, ${"9.99"}, ${"USD"})`;
  await sql.transaction((tx) =>
    applyStockAdjustment(tx, { productId: id, delta: onHand, reason: "initial count", source: "test" })
  );
  return { id, sku };
}

export async function stockOf(sql: Sql, productId: string): Promise<{ onHand: number; adjustments: number }> {
  const [row] = await sql.query<{ on_hand: number; adjustments: string }>`
    select s.on_hand, (select count(*) from inventory_adjustment a where a.product_id = s.product_id
                       and a.source = 'mqtt') as adjustments
    from inventory_stock s where s.product_id = ${productId}`;
  return { onHand: row.on_hand, adjustments: Number(row.adjustments) };
}

/** The `onHand` of the newest stock.adjusted event in the outbox for a product. */
export async function lastAnnouncedOnHand(sql: Sql, productId: string): Promise<number | undefined> {
  const rows = await sql.query<{ envelope: string }>`
    select envelope from outbox where topic = 'ecommerce.inventory.stock.adjusted.v1' and partition_key = ${productId}
    order by id desc limit 1`;
  return rows.length === 0 ? undefined : JSON.parse(rows[0].envelope).payload.onHand;
}

/** One simulated device: `deltas[i]` is sent with `seq` i + 1. */
export interface SensorPlan {
  readonly sku: string;
  readonly deviceId: string;
  readonly deltas: readonly number[];
  /** Send the reading's id as the MQTT 5 `message-id` user property instead of `seq` in the payload. */
  readonly messageIdProperty?: boolean;
}

/**
 * Runs one device: each reading is published at QoS 1 and re-sent (same seq) until the broker acknowledged
 * it, as firmware does. `onAck` counts acknowledged readings. Bounded by `deadlineMs`.
 */
export async function runSensor(
  bus: MqttBus,
  plan: SensorPlan,
  options: { readonly pauseMs?: number; readonly deadlineMs?: number; readonly onAck?: () => void } = {},
): Promise<{ resends: number }> {
  const giveUpAt = Date.now() + (options.deadlineMs ?? 60_000);
  let resends = 0;
  for (const [index, delta] of plan.deltas.entries()) {
    const seq = index + 1;
    const payload = plan.messageIdProperty
      ? JSON.stringify({ delta, reason: "SENSOR" })
      : JSON.stringify({ delta, reason: "SENSOR", seq, deviceId: plan.deviceId });
    const userProperties = plan.messageIdProperty ? { "message-id": `${plan.deviceId}/${seq}` } : undefined;
    for (;;) {
      try {
        await bus.publish(`iot/inventory/${plan.sku}/delta`, payload, { qos: 1, userProperties });
        options.onAck?.();
        break;
      } catch (error) {
        if (Date.now() > giveUpAt) throw new Error(`Sensor ${plan.deviceId} gave up on seq ${seq}`, { cause: error });
        resends++;
        await delay(100);
      }
    }
    if (options.pauseMs) await delay(options.pauseMs);
  }
  return { resends };
}

/** Connects a sensor's bus (clean session: a device that only publishes). */
export function sensorBus(url: string, protocolVersion: 4 | 5): Promise<MqttBus> {
  return createMqttBus({
    url,
    clientId: uniqueName("sensor"),
    cleanSession: true,
    protocolVersion,
    reconnectPeriodMs: 200,
    publishTimeoutMs: 3_000,
    onError: () => {},
  });
}

/** Ends a persistent session left by a test, so the broker stops queueing messages for it. */
export async function discardSession(url: string, clientId: string, protocolVersion: 4 | 5): Promise<void> {
  const bus = await createMqttBus({ url, clientId, cleanSession: true, protocolVersion, onError: () => {} });
  await bus.close();
}

/** Collects the records of `topic` published after `ready` (a throw-away group). */
export async function collectRecords(
  eventLog: EventLog,
  topic: string,
): Promise<{ records: IncomingRecord[]; close(): Promise<void> }> {
  const records: IncomingRecord[] = [];
  await eventLog.ensureTopics([{ name: topic, partitions: 3 }]);
  const subscription = await eventLog.subscribe({
    groupId: uniqueName("sensor-test-collector"),
    topics: [topic],
    from: "latest",
    handler: (record) => {
      records.push(record);
      return Promise.resolve();
    },
  });
  await subscription.ready;
  return { records, close: () => subscription.close() };
}

/** Polls `probe` every 25 ms until it returns true, or fails after `timeoutMs`. */
export async function eventually(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 45_000) {
  const started = Date.now();
  while (!(await probe())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await delay(25);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A Mosquitto of the test's own (same binary, persistence in a temp dir) that it may restart. */
export interface PrivateMosquitto {
  readonly url: string;
  /** SIGTERM (Mosquitto saves its persistence file), wait `downMs`, start again on the same port. */
  restart(downMs: number): Promise<void>;
  /** Stops the broker (if running) and removes its directory. */
  stop(): Promise<void>;
}

/**
 * `maxQueuedMessages` is the broker's per-session queue bound (Mosquitto's default is 1000); a test of what happens
 * past it sets a small one.
 */
export async function startPrivateMosquitto(
  options: { readonly maxQueuedMessages?: number } = {},
): Promise<PrivateMosquitto> {
  const dir = await Deno.makeTempDir({ prefix: "bv-sensors-mosquitto-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const config = `${dir}/mosquitto.conf`;
  await Deno.writeTextFile(
    config,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      // Run as the user that started it: the temp dir is ours, and Mosquitto would otherwise switch user.
      "user root",
      "persistence true",
      `persistence_location ${dir}/`,
      // The default (1000) drops QoS 1 messages queued for a slow subscriber past it, acknowledged or not.
      `max_queued_messages ${options.maxQueuedMessages ?? 100_000}`,
      `log_dest file ${dir}/mosquitto.log`,
    ].join("\n") + "\n",
  );
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    child = new Deno.Command("mosquitto", { args: ["-c", config], stdout: "null", stderr: "null" }).spawn();
    await eventually(`Mosquitto listening on ${port}`, async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return false;
      }
    }, 5_000);
  };
  const halt = async () => {
    if (!child) return;
    const running = child;
    child = undefined;
    running.kill("SIGTERM");
    await running.status;
  };
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async restart(downMs: number) {
      await halt();
      await delay(downMs);
      await start();
    },
    async stop() {
      await halt();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
