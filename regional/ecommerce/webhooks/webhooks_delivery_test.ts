/**
 * Delivery behaviour on the real RabbitMQ (one vhost for this file) and PostgreSQL, with the retry
 * schedule in milliseconds. The event source is the in-process event log: it does not matter here (the
 * Kafka path is `webhooks_kafka_test.ts`).
 */
import assert from "node:assert/strict";
import { webhookDeliveryFailed } from "../../../shared/contracts/events/ecommerce.ts";
import { delay, waitFor } from "../../../shared/ports/contract/_wait_for.ts";
import type { QueueMessage } from "../../../shared/ports/mod.ts";
import { attemptsOf, startRealFixture } from "./_real_fixture.ts";
import { deliveryQueues } from "./mod.ts";

const SCHEDULE_MS = [200, 400, 600, 800, 1_000];
/** The whole schedule at the slowest lane (factor 1.15), plus margin for a loaded machine. */
const SCHEDULE_TOTAL_MS = SCHEDULE_MS.reduce((a, b) => a + b, 0) * 1.15;

Deno.test({
  name: "[rabbitmq+postgres] webhook deliveries: retries, dead letters, 410 and verification",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const f = await startRealFixture({ retryDelaysMs: SCHEDULE_MS });
    try {
      await t.step("a receiver that fails 3 times then succeeds gets the event exactly once more", async () => {
        const { id } = await f.subscribe("/flaky", { failFirst: 3, failStatus: 503 });
        const startedMs = Date.now();
        const event = await f.publishOrderCreated();
        await waitFor("the successful delivery", () => f.receiver.forEvent("/flaky", event.eventId).length >= 4, {
          timeoutMs: SCHEDULE_TOTAL_MS + 10_000,
        });
        const elapsedMs = Date.now() - startedMs;
        // Past the rest of the schedule: nothing more may arrive.
        await delay(SCHEDULE_MS[3] + SCHEDULE_MS[4]);
        const requests = f.receiver.forEvent("/flaky", event.eventId);
        assert.deepEqual(requests.map((r) => r.status), [503, 503, 503, 204]);
        assert.ok(requests.every((r) => r.verified), "every delivery verifies with the partner kit");
        assert.equal(new Set(requests.map((r) => r.webhookId)).size, 1, "one webhook-id across retries");
        assert.ok(elapsedMs >= (SCHEDULE_MS[0] + SCHEDULE_MS[1] + SCHEDULE_MS[2]) * 0.85, `waited ${elapsedMs} ms`);
        const attempts = await attemptsOf(f.sql, id, event.eventId);
        assert.deepEqual(attempts.map((a) => [a.attempt, a.outcome, a.http_status]), [
          [1, "FAILED", 503],
          [2, "FAILED", 503],
          [3, "FAILED", 503],
          [4, "DELIVERED", 204],
        ]);
      });

      await t.step("a receiver that always fails ends in the DLQ with the failure event in the outbox", async () => {
        const { id } = await f.subscribe("/down", { status: 500 });
        const event = await f.publishOrderCreated();
        await waitFor(
          "the final attempt",
          async () => (await attemptsOf(f.sql, id, event.eventId)).some((a) => a.final),
          {
            timeoutMs: SCHEDULE_TOTAL_MS + 10_000,
          },
        );
        const attempts = await attemptsOf(f.sql, id, event.eventId);
        // Six real requests (an open circuit may defer some in between; those do not count).
        const failed = attempts.filter((a) => a.outcome === "FAILED");
        assert.deepEqual(failed.map((a) => a.attempt), [1, 2, 3, 4, 5, 6]);
        assert.ok(attempts.every((a) => a.outcome === "FAILED" || a.outcome === "CIRCUIT_OPEN"));
        assert.ok(failed[5].final, "the sixth failure is the final attempt");
        assert.ok(f.receiver.forEvent("/down", event.eventId).every((r) => r.verified && r.status === 500));

        const dead: QueueMessage[] = [];
        for (const dlq of deliveryQueues().dlqs) {
          await f.queue.declare({ name: dlq });
          await f.queue.consume(dlq, (message) => Promise.resolve(void dead.push(message)), { prefetch: 10 });
        }
        await waitFor("the delivery in a DLQ", () => dead.some((m) => JSON.parse(m.body).eventId === event.eventId));
        const message = dead.find((m) => JSON.parse(m.body).eventId === event.eventId)!;
        assert.equal(message.headers["x-bv-attempts"], "6");
        assert.match(message.headers["x-bv-error"], /HTTP 500/);

        const outbox = await f.sql.query<{ envelope: string }>`
          select envelope from outbox where topic = ${webhookDeliveryFailed.eventType}`;
        const failures = outbox.map((row) => JSON.parse(row.envelope)).filter((e) =>
          e.payload.eventId === event.eventId
        );
        assert.equal(failures.length, 1, "exactly one failure event");
        assert.equal(failures[0].payload.subscriptionId, id);
        assert.equal(failures[0].payload.attempts, 6);
      });

      await t.step("410 Gone disables the subscription and stops delivery", async () => {
        const { id } = await f.subscribe("/gone", { status: 410 });
        const first = await f.publishOrderCreated();
        await waitFor("the subscription to be disabled", async () => {
          const [row] = await f.sql.query<
            { status: string }
          >`select status from webhook_subscriptions where id = ${id}`;
          return row.status === "DISABLED";
        }, { timeoutMs: 10_000 });
        const second = await f.publishOrderCreated();
        await delay(SCHEDULE_MS[0] * 3);
        assert.equal(f.receiver.forEvent("/gone", first.eventId).length, 1, "410 is not retried");
        assert.equal(f.receiver.forEvent("/gone", second.eventId).length, 0, "nothing is sent after 410");
        assert.deepEqual((await attemptsOf(f.sql, id, first.eventId)).map((a) => a.outcome), ["GONE"]);
      });

      await t.step("a receiver holding the wrong secret rejects every delivery as forged", async () => {
        await f.subscribe("/wrong-secret", {});
        // The partner "knows" a secret that is not the subscription's: what a forger would sign with.
        f.receiver.route("/wrong-secret", { secrets: ["whsec_" + btoa("forger's secret, 32 bytes long!!")] });
        const event = await f.publishOrderCreated();
        await waitFor("a delivery", () => f.receiver.forEvent("/wrong-secret", event.eventId).length >= 1);
        const [request] = f.receiver.forEvent("/wrong-secret", event.eventId);
        assert.equal(request.verified, false);
        assert.equal(request.status, 400);
        assert.match(request.reason!, /No signature matches/);
      });
    } finally {
      await f.close();
    }
  },
});
