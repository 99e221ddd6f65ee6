/**
 * Nothing is lost when the delivery side restarts: the webhooks process (dispatcher and workers) closed
 * and started again mid-delivery, and RabbitMQ itself (`rabbitmqctl stop_app` / `start_app`).
 *
 * The RabbitMQ restart stops the SHARED broker (other users see a 5–15 s outage). The light variant (20
 * events) runs by default: 12–13 s on this machine, 32 s when it was heavily loaded. The heavy one (200
 * events, 3 s pause) runs only with `BV_TEST_BROKER_RESTARTS=1`. Both start the broker again in `finally`,
 * whatever happens. The receiver fails each event's first request, so retries are parked in TTL queues
 * during the restart; the circuit breaker is set out of reach because a 50 % failure rate is exactly what
 * trips it, and this file tests restarts, not the breaker.
 */
import assert from "node:assert/strict";
import { delay, waitFor } from "../../../shared/ports/contract/_wait_for.ts";
import { rabbitmqctl } from "../../../shared/testing/rabbit_vhost.ts";
import type { Envelope } from "../../../shared/contracts/envelope.ts";
import { type RealFixture, startRealFixture } from "./_real_fixture.ts";

const brokerRestartsEnabled = Deno.env.get("BV_TEST_BROKER_RESTARTS") === "1";
const NO_BREAKER = { consecutiveFailures: 1_000_000 };

/** Every event has at least one verified 2xx delivery; resolves with how many extra (duplicate) successes. */
async function assertAllDelivered(f: RealFixture, path: string, events: readonly Envelope[], timeoutMs: number) {
  const delivered = () => events.filter((e) => f.receiver.forEvent(path, e.eventId).some((r) => r.status === 204));
  await waitFor(`all ${events.length} events delivered`, () => delivered().length === events.length, {
    timeoutMs,
    intervalMs: 50,
  }).catch(async (error) => {
    const done = new Set(delivered().map((e) => e.eventId));
    const missing = events.filter((e) => !done.has(e.eventId)).map((e) => e.eventId);
    const dispatched = await f.sql.query<{ n: number }>`
      select count(*)::int as n from processed_events where event_id = any(${missing}::uuid[])`;
    const attempts = await f.sql.query`
      select outcome, final, count(*)::int as n from webhook_delivery_attempts
      where event_id = any(${missing}::uuid[]) group by 1, 2`;
    const requested = missing.filter((id) => f.receiver.forEvent(path, id).length > 0).length;
    throw new Error(
      `${error.message}: ${missing.length} missing; ${dispatched[0].n} of them dispatched, ${requested} requested; ` +
        `attempts ${JSON.stringify(attempts)}`,
    );
  });
  const requests = events.flatMap((e) => f.receiver.forEvent(path, e.eventId));
  assert.ok(requests.every((r) => r.verified), "every delivery verifies with the partner kit");
  return requests.filter((r) => r.status === 204).length - events.length;
}

Deno.test({
  name: "[rabbitmq+postgres] restarting the webhooks process mid-delivery loses no delivery",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const f = await startRealFixture({ retryDelaysMs: [200, 400, 600, 800, 1_000], breaker: NO_BREAKER });
    try {
      await f.subscribe("/slow", { delayMs: 100, failFirst: 1 });
      const events: Envelope[] = [];
      for (let i = 0; i < 30; i++) events.push(await f.publishOrderCreated());
      await waitFor("deliveries under way", () => f.receiver.requests.length >= 10, { timeoutMs: 10_000 });
      await f.webhooks.close();
      await delay(300);
      await f.restart();
      const duplicates = await assertAllDelivered(f, "/slow", events, 30_000);
      console.log(`webhooks restart: ${events.length} events delivered, ${duplicates} duplicate successes`);
    } finally {
      await f.close();
    }
  },
});

async function brokerRestartScenario(eventsCount: number, outageMs: number): Promise<void> {
  // publish() waits out the outage instead of failing, so the dispatcher rides through it.
  const f = await startRealFixture({
    retryDelaysMs: [200, 400, 600, 800, 1_000],
    publishTimeoutMs: 30_000,
    breaker: NO_BREAKER,
  });
  try {
    await f.subscribe("/through-restart", { delayMs: 5, failFirst: 1 });
    const events: Envelope[] = [];
    const publishing = (async () => {
      for (let i = 0; i < eventsCount; i++) {
        events.push(await f.publishOrderCreated());
        await delay(10);
      }
    })();
    await waitFor("deliveries under way", () => f.receiver.requests.length >= Math.min(10, eventsCount / 2), {
      timeoutMs: 10_000,
    });
    const stoppedAtMs = Date.now();
    await rabbitmqctl("stop_app");
    await delay(outageMs);
    await rabbitmqctl("start_app");
    await rabbitmqctl("await_startup");
    const brokerDownMs = Date.now() - stoppedAtMs;
    await publishing;
    const duplicates = await assertAllDelivered(f, "/through-restart", events, 45_000);
    console.log(
      `rabbitmq restart: broker down ${brokerDownMs} ms; ${events.length} events delivered, ` +
        `${duplicates} duplicate successes (receivers de-duplicate by webhook-id)`,
    );
  } finally {
    // Whatever happened, leave the broker running for everyone else.
    await rabbitmqctl("start_app").catch((error) => console.error(error));
    await rabbitmqctl("await_startup").catch((error) => console.error(error));
    await f.close();
  }
}

Deno.test({
  name: "[rabbitmq+postgres] restarting RabbitMQ during delivery loses nothing (light, ~1 s pause)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => brokerRestartScenario(20, 1_000),
});

Deno.test({
  name: "[rabbitmq+postgres] restarting RabbitMQ during delivery loses nothing (heavy, 3 s pause)",
  ignore: !brokerRestartsEnabled,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => brokerRestartScenario(200, 3_000),
});
