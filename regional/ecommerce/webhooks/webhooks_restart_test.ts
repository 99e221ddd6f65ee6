/**
 * Nothing is lost when the delivery side restarts: the webhooks process (dispatcher and workers) closed
 * and started again mid-delivery, and RabbitMQ itself (`rabbitmqctl stop_app` / `start_app`).
 *
 * The RabbitMQ restart stops the SHARED broker (other users see the outage), so both its variants run only
 * with `BV_TEST_BROKER_RESTARTS=1`: the light one (20 events) was meant to run by default if it stayed under
 * ~20 s, but `rabbitmqctl stop_app` + `start_app` + `await_startup` alone took ~15 s here (32 s for the
 * test). Both start the broker again in `finally`, whatever happens. The process restart runs by default.
 */
import assert from "node:assert/strict";
import { delay, waitFor } from "../../../shared/ports/contract/_wait_for.ts";
import { rabbitmqctl } from "../../../shared/testing/rabbit_vhost.ts";
import type { Envelope } from "../../../shared/contracts/envelope.ts";
import { type RealFixture, startRealFixture } from "./_real_fixture.ts";

const brokerRestartsEnabled = Deno.env.get("BV_TEST_BROKER_RESTARTS") === "1";

/** Every event has at least one verified 2xx delivery; resolves with how many extra (duplicate) successes. */
async function assertAllDelivered(f: RealFixture, path: string, events: readonly Envelope[], timeoutMs: number) {
  const delivered = () => events.filter((e) => f.receiver.forEvent(path, e.eventId).some((r) => r.status === 204));
  await waitFor(`all ${events.length} events delivered`, () => delivered().length === events.length, {
    timeoutMs,
    intervalMs: 50,
  }).catch((error) => {
    throw new Error(`${error.message}: ${events.length - delivered().length} missing`);
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
    const f = await startRealFixture({ retryDelaysMs: [200, 400, 600, 800, 1_000] });
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
  const f = await startRealFixture({ retryDelaysMs: [200, 400, 600, 800, 1_000], publishTimeoutMs: 30_000 });
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
  name: "[rabbitmq+postgres] restarting RabbitMQ during delivery loses nothing (light, ~1 s outage)",
  ignore: !brokerRestartsEnabled,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => brokerRestartScenario(20, 1_000),
});

Deno.test({
  name: "[rabbitmq+postgres] restarting RabbitMQ during delivery loses nothing (heavy, 3 s outage)",
  ignore: !brokerRestartsEnabled,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => brokerRestartScenario(200, 3_000),
});
