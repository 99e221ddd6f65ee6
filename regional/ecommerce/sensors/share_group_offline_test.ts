/**
 * What the platform guarantees when two linked regions' bridges share one Mosquitto (one `$share` group, each a
 * persistent session) and one of them is DOWN while its session lives on. Mosquitto 2.0 hands the group's messages
 * round robin over the members' sessions whether or not they are connected: the down region's turn is queued in
 * its session. The session rescue (`session_rescue.ts`) drains it: once the down bridge's presence has said
 * `offline` for `confirmMs` (its graceful stop, or its Last Will after a crash), the other bridge takes the session
 * over and forwards its readings; when the bridge returns it takes its session back, and nothing is forwarded twice.
 * Without the rescue (`rescue: false`), two broker limits lose readings, both acknowledged to the device: the
 * broker's `max_queued_messages` (default 1000) per session, and the session's expiry (the queued turn is dropped,
 * not given to the other member) — which is why neither a short session expiry nor unsubscribing at stop is used
 * (README, "One broker for both regions"). Graceful/crash on the shared Mosquitto (unique group, skus and client
 * ids); the limits on a private Mosquitto.
 */
import assert from "node:assert/strict";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { delay, eventually, startPrivateMosquitto } from "./_fixture_for_test.ts";
import { type RegionBridge, rescueMetric, twoRegions } from "./_two_regions_for_test.ts";

for (const how of ["stopped gracefully", "crashed"] as const) {
  Deno.test({
    name: `with west's bridge ${how}, east drains west's session: every reading forwarded within seconds, once; ` +
      "when west returns it takes its session back, nothing is forwarded twice (Mosquitto)",
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      // The crash closes west's socket (the relay's cut): the broker publishes its will at once, with no short
      // keepalive, which a CPU stall on a loaded machine could outlast and so drop the rescue connection too.
      const regions = await twoRegions(realInfra.mqttUrl, { crashable: how === "crashed", rescue: { confirmMs: 300 } });
      const west = regions.ids.west;
      const running: RegionBridge[] = [regions.eastBridge];
      try {
        await (how === "crashed" ? regions.westBridge.crash() : regions.westBridge.stop());
        const readings = 40;
        const publishedAt = Date.now();
        for (let i = 0; i < readings; i++) await regions.read();
        // Before the rescue, Mosquitto 2.0 kept west's turn (half) in its session until west returned.
        await eventually(
          "east forwards every reading, west's turn too",
          () => regions.forwarded.east() >= readings,
          5_000,
        );
        const drainedMs = Date.now() - publishedAt;
        await delay(1_000); // a second copy, if any, has had time to arrive
        assert.equal(regions.forwarded.east(), readings, `each once (all forwarded ${drainedMs} ms after publishing)`);
        assert.equal(regions.forwarded.west(), 0);
        assert.equal(await rescueMetric("rescues_total", west), 1, "one rescue of west's session");
        assert.equal(await rescueMetric("rescues_active", west), 1);
        assert.ok(await rescueMetric("rescued_readings_total", west) > 0, "west's turn came through the rescue");

        running.push(await regions.restartWest());
        await eventually(
          "the rescue ends when west takes its session back",
          async () => await rescueMetric("rescues_active", west) === 0,
          5_000,
        );
        await delay(1_500); // anything left in west's session, or a rescue coming back, has had time
        assert.equal(regions.forwarded.west(), 0, "nothing was left queued for west");
        assert.equal(await rescueMetric("rescues_total", west), 1, "and no second rescue");
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
  name: "without the rescue, past max_queued_messages a stopped region's turn is dropped by the broker, though " +
    "acknowledged to the device; a session that expires loses its queued turn too (private Mosquitto)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const mosquitto = await startPrivateMosquitto({ maxQueuedMessages: 10 });
    try {
      // max_queued_messages: 40 readings while west is down; west's session may hold 10 of its 20.
      {
        const regions = await twoRegions(mosquitto.url, { rescue: false });
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
        const regions = await twoRegions(mosquitto.url, { sessionExpirySec: 2, rescue: false });
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
