/**
 * The per-endpoint bulkhead on real RabbitMQ and PostgreSQL: a partner answering 2xx slowly holds at most its cap of
 * the lane's prefetch slots, so another partner's deliveries go out while it is busy; the slow partner's deliveries,
 * deferred many times meanwhile, each arrive once and use up no attempt.
 */
import assert from "node:assert/strict";
import { metrics } from "../../../shared/observability/mod.ts";
import { waitFor } from "../../../shared/ports/contract/_wait_for.ts";
import type { Envelope } from "../../../shared/contracts/envelope.ts";
import { attemptsOf, startRealFixture } from "./_real_fixture.ts";
import { startTestReceiver } from "./_test_receiver.ts";
import { laneOf } from "./delivery_queues.ts";
import { deliveryIdOf } from "./dispatcher.ts";

/** The slow partner's answer time: 2xx, well inside the delivery timeout, so its circuit stays closed. */
const SLOW_MS = 2_000;
const EVENTS = 4;
/** Three attempts per delivery (two retries). */
const SCHEDULE_MS = [200, 200];
const ATTEMPTS_MAX = SCHEDULE_MS.length + 1;

async function deferredCount(): Promise<number> {
  const metric = await metrics.registry.getSingleMetric("bv_webhook_deliveries_deferred_total")?.get();
  return metric?.values.reduce((sum, value) => sum + value.value, 0) ?? 0;
}

Deno.test({
  name: "[rabbitmq+postgres] a slow partner holds only its endpoint's slots: a fast partner is not delayed, " +
    "and every slow delivery, deferred meanwhile, arrives once without using an attempt",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // Two slots per lane, one attempt in flight per endpoint, and every delivery in lane 0: without the cap the slow
    // partner's deliveries take both slots of the lane (each for SLOW_MS) and the fast partner's queue behind them.
    const f = await startRealFixture({
      retryDelaysMs: SCHEDULE_MS,
      deliveryTimeoutMs: 5_000,
      endpointConcurrency: 1,
      prefetch: 2,
    });
    // Another origin (port) than the slow partner's receiver: the cap is per origin.
    const fastReceiver = startTestReceiver();
    try {
      const slow = await f.subscribe("/slow", { delayMs: SLOW_MS });
      const fast = await f.subscribe("/fast", {}, fastReceiver);
      const inLaneZero = async (event: Envelope) =>
        laneOf(await deliveryIdOf(slow.id, event.eventId)) === 0 &&
        laneOf(await deliveryIdOf(fast.id, event.eventId)) === 0;
      const deferredBefore = await deferredCount();
      const events: Envelope[] = [];
      for (let i = 0; i < EVENTS; i++) events.push(await f.publishOrderCreated(inLaneZero));

      await waitFor(
        "the fast partner's deliveries",
        () => events.every((e) => fastReceiver.forEvent("/fast", e.eventId).length > 0),
        { timeoutMs: 20_000 },
      );
      const firstSlowAtMs = Math.min(...f.receiver.requests.filter((r) => r.path === "/slow").map((r) => r.atMs));
      const lastFastAtMs = Math.max(...fastReceiver.requests.map((r) => r.atMs));
      const afterMs = Math.round(lastFastAtMs - firstSlowAtMs);
      assert.ok(
        afterMs < SLOW_MS,
        `the fast partner's last delivery arrived ${afterMs} ms after the slow partner's first request, which takes ` +
          `${SLOW_MS} ms: it waited behind the slow partner`,
      );

      await waitFor("every slow delivery", async () => {
        for (const e of events) if ((await attemptsOf(f.sql, slow.id, e.eventId)).length === 0) return false;
        return true;
      }, { timeoutMs: 40_000, intervalMs: 50 });
      for (const e of events) {
        const requests = f.receiver.forEvent("/slow", e.eventId);
        assert.equal(requests.length, 1, "each slow delivery is sent once");
        assert.ok(requests[0].verified);
        // Attempt 1, delivered: no deferral was recorded or counted as an attempt; nothing failed or was dead-lettered.
        assert.deepEqual(await attemptsOf(f.sql, slow.id, e.eventId), [
          { attempt: 1, outcome: "DELIVERED", final: false, http_status: 204 },
        ]);
        assert.deepEqual((await attemptsOf(f.sql, fast.id, e.eventId)).map((r) => r.outcome), ["DELIVERED"]);
        assert.equal(fastReceiver.forEvent("/fast", e.eventId).length, 1);
      }
      // More deferrals than EVENTS × ATTEMPTS_MAX: some delivery was deferred more often than it has attempts.
      const deferred = (await deferredCount()) - deferredBefore;
      assert.ok(deferred > EVENTS * ATTEMPTS_MAX, `${deferred} deferrals`);
      const failures = await f.sql.query`select 1 from outbox where topic like '%webhook.delivery.failed%'`;
      assert.equal(failures.length, 0, "no failure event");
      console.log(
        `bulkhead: fast partner done ${afterMs} ms after the slow one's first request; ${deferred} deferrals`,
      );
    } finally {
      await fastReceiver.close();
      await f.close();
    }
  },
});
