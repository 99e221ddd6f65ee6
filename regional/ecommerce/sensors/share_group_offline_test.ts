/**
 * What the platform guarantees when two linked regions' bridges share one Mosquitto (one `$share` group, each a
 * persistent session) and one of them is DOWN while its session lives on. Mosquitto 2.0 hands the group's messages
 * round robin over the members' sessions whether or not they are connected: the stopped region's turn is queued in
 * its session. So while a bridge is down the other forwards only HALF of the readings; the rest are forwarded, once,
 * when the stopped bridge returns — after a graceful stop (`close()`) and after a crash (no DISCONNECT) alike.
 * Two limits lose readings, both acknowledged to the device: the broker's `max_queued_messages` (default 1000) per
 * session, and the session's expiry (the queued turn is dropped, not given to the other member) — which is why
 * neither a short session expiry nor unsubscribing at stop is used (README, "One broker for both regions").
 * Graceful/crash on the shared Mosquitto (unique group, skus and client ids); the limits on a private Mosquitto.
 */
import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createMqttBus } from "../../../shared/adapters/mqtt/mod.ts";
import { sensorDeltaReceived } from "../../../shared/contracts/events/sensors.ts";
import type { EventLog, IncomingRecord } from "../../../shared/ports/mod.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import {
  collectRecords,
  delay,
  discardSession,
  eventually,
  sensorBus,
  startPrivateMosquitto,
} from "./_fixture_for_test.ts";
import { startSensorBridge } from "./mod.ts";

/** A region's bridge as background.ts starts it (persistent session, the regions' group); `crash()` cuts its TCP. */
interface RegionBridge {
  /** The lifecycle's stop: the bridge's `close()`, then the bus's (a DISCONNECT; the session stays). */
  stop(): Promise<void>;
  /** The process dying: the socket closes with no DISCONNECT. The session (and its subscription) stays. */
  crash(): Promise<void>;
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
  shareGroup: string,
  region: string,
  eventLog: EventLog,
  options: { sessionExpirySec?: number; crashable?: boolean } = {},
): Promise<RegionBridge> {
  const broker = new URL(url);
  const relay = options.crashable ? relayTo(Number(broker.port || 1883)) : undefined;
  const bus = await createMqttBus({
    url: relay ? `mqtt://127.0.0.1:${relay.port}` : url,
    clientId,
    sessionExpirySec: options.sessionExpirySec,
    // Queued readings arrive right after CONNACK; a hold long enough for subscribe() to register the handler.
    unmatchedHoldMs: 2_000,
    onError: () => {},
  });
  const bridge = await startSensorBridge({ mqtt: bus, shareGroup, eventLog, region, lingerMs: 1 })
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
      if (!relay) throw new Error("startRegionBridge({ crashable: true }) to crash it");
      relay.cut();
      // The process is gone: nothing of it runs any more (its reconnects would find the relay closed anyway).
      await bridge.close();
      await bus.close();
    },
  };
}

/** Two regions' bridges on `url` in one group, a device, and the records each region forwarded for one sku. */
async function twoRegions(url: string, options: { sessionExpirySec?: number; crashable?: boolean } = {}) {
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
  const eastBridge = await startRegionBridge(url, ids.east, group, "east", east);
  const westBridge = await startRegionBridge(url, ids.west, group, "west", west, options);
  const device = await sensorBus(url, 5);
  let seq = 0;
  return {
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
      startRegionBridge(url, ids.west, group, "west", west, { sessionExpirySec: options.sessionExpirySec }),
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
    },
  };
}

for (const how of ["stopped gracefully", "crashed"] as const) {
  Deno.test({
    name: `with west's bridge ${how}, east forwards only half the readings; the rest are forwarded once when west ` +
      "returns, none lost (Mosquitto)",
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const regions = await twoRegions(realInfra.mqttUrl, { crashable: how === "crashed" });
      const running: RegionBridge[] = [regions.eastBridge];
      try {
        await (how === "crashed" ? regions.westBridge.crash() : regions.westBridge.stop());
        const readings = 40;
        for (let i = 0; i < readings; i++) await regions.read();
        await eventually("east forwards its turn", () => regions.forwarded.east() >= readings / 2, 10_000);
        await delay(1_500); // west's turn, were it given to east, has had time to come
        // Mosquitto 2.0 gives west's session its turn though west is down. Should this fail with more (a broker that
        // skips offline members), the delay below is gone: update the README ("One broker for both regions").
        assert.equal(regions.forwarded.east(), readings / 2, "east gets only its round-robin turn");
        assert.equal(regions.forwarded.west(), 0);

        const returnedAt = Date.now();
        running.push(await regions.restartWest());
        await eventually(
          "west forwards the readings queued for it",
          () => regions.forwarded.west() >= readings / 2,
          10_000,
        );
        const catchUpMs = Date.now() - returnedAt;
        await delay(1_000); // a second copy, if any, has had time to arrive
        assert.equal(
          regions.forwarded.west(),
          readings / 2,
          `west's turn, forwarded ${catchUpMs} ms after it returned`,
        );
        const ids = regions.messageIds();
        assert.equal(ids.size, readings, "every reading forwarded: none lost");
        assert.deepEqual([...ids.values()].filter((n) => n !== 1), [], "and none twice");
      } finally {
        await regions.close(...running);
      }
    },
  });
}

Deno.test({
  name: "past max_queued_messages a stopped region's turn is dropped by the broker, though acknowledged to the " +
    "device; a session that expires loses its queued turn too (private Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const mosquitto = await startPrivateMosquitto({ maxQueuedMessages: 10 });
    try {
      // max_queued_messages: 40 readings while west is down; west's session may hold 10 of its 20.
      {
        const regions = await twoRegions(mosquitto.url);
        const running = [regions.eastBridge];
        try {
          await regions.westBridge.stop();
          for (let i = 1; i <= 40; i++) {
            await regions.read(); // each one acknowledged to the device
            // East keeps up (its own queue stays under the bound): only west's queue overflows.
            if (i % 2 === 0) await eventually("east forwards its turn", () => regions.forwarded.east() >= i / 2, 5_000);
          }
          running.push(await regions.restartWest());
          await eventually("west forwards what its session kept", () => regions.forwarded.west() >= 10, 10_000);
          await delay(1_000);
          assert.deepEqual({ east: regions.forwarded.east(), west: regions.forwarded.west() }, { east: 20, west: 10 });
          assert.equal(regions.messageIds().size, 30, "10 of the 40 acknowledged readings are lost");
        } finally {
          await regions.close(...running);
        }
      }
      // Session expiry (MQTT 5): west's session expires 2 s after its stop. Its queued turn is dropped with it, not
      // handed to east; only readings published after the expiry all reach east.
      {
        const regions = await twoRegions(mosquitto.url, { sessionExpirySec: 2 });
        const running = [regions.eastBridge];
        try {
          await regions.westBridge.stop();
          for (let i = 0; i < 10; i++) await regions.read();
          await eventually("east forwards its turn", () => regions.forwarded.east() >= 5, 5_000);
          await delay(3_500); // past the expiry (Mosquitto checks sessions about once a second)
          for (let i = 0; i < 10; i++) await regions.read();
          await eventually("east forwards every later reading", () => regions.forwarded.east() >= 15, 5_000);
          running.push(await regions.restartWest());
          await delay(2_000);
          assert.deepEqual({ east: regions.forwarded.east(), west: regions.forwarded.west() }, { east: 15, west: 0 });
          assert.equal(regions.messageIds().size, 15, "the 5 readings queued for the expired session are lost");
        } finally {
          await regions.close(...running);
        }
      }
    } finally {
      await mosquitto.stop();
    }
  },
});
