/**
 * The whole path on real infrastructure: an order event on Kafka → the dispatcher (consumer group
 * `ecommerce-<region>.webhooks`) → RabbitMQ → a signed POST the partner kit verifies. Other test runs may
 * publish order events on the same topics, so assertions look only at this test's event.
 */
import assert from "node:assert/strict";
import { createKafkaEventLog } from "../../../shared/adapters/kafka/mod.ts";
import { waitFor } from "../../../shared/ports/contract/_wait_for.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { verifyBvSignature, verifyWebhook } from "../../../partner-kit/mod.ts";
import { attemptsOf, startRealFixture } from "./_real_fixture.ts";
import { WEBHOOK_EVENT_TYPES } from "./mod.ts";

Deno.test({
  name: "[kafka+rabbitmq+postgres] an order event on Kafka reaches the partner signed and verifiable",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const eventLog = createKafkaEventLog({ brokers: realInfra.kafkaBrokers, clientId: uniqueName("webhooks") });
    await eventLog.ensureTopics(WEBHOOK_EVENT_TYPES.map((name) => ({ name, partitions: 3 })));
    const f = await startRealFixture({ eventLog });
    try {
      const { id, secret } = await f.subscribe("/orders", {});
      const event = await f.publishOrderCreated();
      await waitFor("the delivery", () => f.receiver.forEvent("/orders", event.eventId).length === 1, {
        timeoutMs: 20_000,
      });
      const [request] = f.receiver.forEvent("/orders", event.eventId);
      assert.equal(request.verified, true, request.reason ?? "");
      assert.equal(request.status, 204);
      assert.deepEqual(JSON.parse(request.body).data, event.payload);
      const options = { headers: request.headers, body: request.body, secrets: [secret] };
      assert.equal((await verifyWebhook(options)).ok, true);
      assert.equal((await verifyBvSignature(options)).ok, true);
      const tampered = { ...options, body: request.body.replace('"qty":2', '"qty":20') };
      assert.equal((await verifyWebhook(tampered)).ok, false, "a tampered body is refused");
      assert.equal((await verifyBvSignature(tampered)).ok, false);
      await waitFor("the attempt row", async () => (await attemptsOf(f.sql, id, event.eventId)).length === 1);
      assert.deepEqual((await attemptsOf(f.sql, id, event.eventId)).map((a) => a.outcome), ["DELIVERED"]);
    } finally {
      await f.close();
    }
  },
});
