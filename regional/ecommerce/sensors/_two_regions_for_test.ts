/**
 * @module
 * Test support: two linked regions' sensor bridges in one `$share` group on one broker, as background.ts starts them
 * (persistent sessions with presence, the session rescue unless turned off), a device, the records each region
 * forwarded, and a TCP relay that lets a test cut a bridge's connection as a crash would (no DISCONNECT).
 */
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createMqttBus } from "../../../shared/adapters/mqtt/mod.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import { metrics } from "../../../shared/observability/mod.ts";
import type { EventLog, IncomingRecord } from "../../../shared/ports/mod.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { collectRecords, discardSession, sensorBus } from "./_fixture_for_test.ts";
import { sensorPresenceTopicOf, type SessionRescueOptions, startSensorBridge } from "./mod.ts";

/** A region's bridge as background.ts starts it; `crash()` cuts its TCP. */
export interface RegionBridge {
  /** The lifecycle's stop: the bridge's `close()`, then the bus's (`offline`, then a DISCONNECT; the session stays). */
  stop(): Promise<void>;
  /** The process dying: the socket closes with no DISCONNECT (the will says `offline`). The session stays. */
  crash(): Promise<void>;
}

/** How the regions' bridges are made. */
export interface TwoRegionsOptions {
  readonly sessionExpirySec?: number;
  /** West's bridge connects through a relay its `crash()` cuts. */
  readonly crashable?: boolean;
  /** Both bridges' rescue (`false`: none, and no presence). @default { confirmMs: 300 } */
  readonly rescue?: SessionRescueOptions | false;
  /** The bridges' keepalive (the will of a connection that goes silent fires after 1.5× it). @default 30 */
  readonly keepaliveSec?: number;
  /** Each Kafka publish of the bridges takes this long first: readings stay in flight on the bridges a while. */
  readonly publishDelayMs?: number;
}

/** A TCP relay to the broker, so a test can cut a bridge's connection as a crash would (no DISCONNECT). */
function relayTo(port: number): { port: number; cut(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const inbound of listener) {
      const outbound = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(inbound, outbound);
      inbound.readable.pipeTo(outbound.writable).catch(() => {});
      outbound.readable.pipeTo(inbound.writable).catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    cut() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* already closed by its pipe */ }
      }
    },
  };
}

async function startRegionBridge(
  url: string,
  clientId: string,
  peerId: string,
  shareGroup: string,
  region: string,
  eventLog: EventLog,
  options: TwoRegionsOptions,
): Promise<RegionBridge> {
  const broker = new URL(url);
  const relay = options.crashable ? relayTo(Number(broker.port || 1883)) : undefined;
  // As background.ts: the other region's bridge is the only peer.
  const rescue = options.rescue === false ? false : { confirmMs: 300, ...options.rescue, peerClientIds: [peerId] };
  const bus = await createMqttBus({
    url: relay ? `mqtt://127.0.0.1:${relay.port}` : url,
    clientId,
    sessionExpirySec: options.sessionExpirySec,
    keepaliveSec: options.keepaliveSec,
    // Queued readings arrive right after CONNACK; a hold long enough for subscribe() to register the handler.
    unmatchedHoldMs: 2_000,
    presenceTopic: rescue === false ? undefined : sensorPresenceTopicOf(shareGroup, clientId),
    onError: () => {},
  });
  const delayMs = options.publishDelayMs;
  const forwardTo = delayMs === undefined ? eventLog : new Proxy(eventLog, {
    get(target, key) {
      if (key === "publish") {
        return async (...args: Parameters<EventLog["publish"]>) => {
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          return await target.publish(...args);
        };
      }
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const bridge = await startSensorBridge({ mqtt: bus, shareGroup, eventLog: forwardTo, region, lingerMs: 1, rescue })
    .catch(async (error) => {
      await bus.close();
      throw error;
    });
  return {
    async stop() {
      await bridge.close();
      await bus.close();
    },
    async crash() {
      if (!relay) throw new Error("twoRegions({ crashable: true }) to crash west");
      relay.cut();
      // The process is gone: nothing of it runs any more (its reconnects would find the relay closed anyway).
      await bridge.close();
      await bus.close();
    },
  };
}

/** Deletes retained messages (an empty retained publish each). */
async function clearRetained(url: string, topics: readonly string[]): Promise<void> {
  const bus = await createMqttBus({ url, clientId: uniqueName("bv-test-clear"), cleanSession: true });
  try {
    for (const topic of topics) await bus.publish(topic, "", { qos: 1, retain: true });
  } finally {
    await bus.close();
  }
}

/** A rescue metric of this process for `peer` (0 when never set). */
export async function rescueMetric(
  name: "rescues_total" | "rescued_readings_total" | "rescues_active",
  peer: string,
): Promise<number> {
  const metric = metrics.registry.getSingleMetric(`bv_sensor_session_${name}`);
  const values = (await metric?.get())?.values ?? [];
  return values.find((value) => value.labels.peer === peer)?.value ?? 0;
}

/** Two regions' bridges on `url` in one group, a device, and the records each region forwarded for one sku. */
export async function twoRegions(url: string, options: TwoRegionsOptions = {}) {
  const group = uniqueName("bv-sensor-bridge");
  const ids = { east: uniqueName("bv-sensor-bridge-east"), west: uniqueName("bv-sensor-bridge-west") };
  const sku = uniqueName("OFF").toUpperCase();
  const deviceId = uniqueName("shelf");
  // One in-memory event log per region, as each region has its own Kafka.
  const east = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 50 } });
  const west = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 50 } });
  const collected = {
    east: await collectRecords(east, sensorDeltaReceived.eventType),
    west: await collectRecords(west, sensorDeltaReceived.eventType),
  };
  const ofSku = (records: IncomingRecord[]) => records.filter((r) => r.key === sku);
  const forwarded = {
    east: () => ofSku(collected.east.records).length,
    west: () => ofSku(collected.west.records).length,
  };
  const eastBridge = await startRegionBridge(url, ids.east, ids.west, group, "east", east, {
    ...options,
    crashable: false,
  });
  const westBridge = await startRegionBridge(url, ids.west, ids.east, group, "west", west, options);
  const device = await sensorBus(url, 5);
  let seq = 0;
  return {
    ids,
    group,
    forwarded,
    eastBridge,
    westBridge,
    /** A reading with `seq` + `deviceId` (its id names it), acknowledged by the broker. */
    read: () =>
      device.publish(
        `iot/inventory/${sku}/delta`,
        JSON.stringify({ delta: -1, reason: "SENSOR", seq: ++seq, deviceId }),
        { qos: 1 },
      ),
    /** West's bridge back on its session (same client id), as its next process. */
    restartWest: () =>
      startRegionBridge(url, ids.west, ids.east, group, "west", west, { ...options, crashable: false }),
    /** Every reading forwarded, by either region: each message id with how often it was forwarded. */
    messageIds(): Map<string, number> {
      const counts = new Map<string, number>();
      for (const record of [...ofSku(collected.east.records), ...ofSku(collected.west.records)]) {
        const id = JSON.parse(record.value).payload.messageId as string;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      return counts;
    },
    async close(...bridges: RegionBridge[]) {
      for (const bridge of bridges) await bridge.stop().catch(() => {});
      await device.close();
      await collected.east.close();
      await collected.west.close();
      await east.close?.();
      await west.close?.();
      await discardSession(url, ids.east, 5);
      await discardSession(url, ids.west, 5);
      if (options.rescue !== false) {
        await clearRetained(url, [ids.east, ids.west].map((id) => sensorPresenceTopicOf(group, id)))
          .catch(() => {});
      }
    },
  };
}
