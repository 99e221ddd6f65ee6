/**
 * `gql:product:{id}` invalidation on real Kafka and Redis, where the event log hands the consumer batches:
 * every product named by a stock.adjusted event loses its entry and has its aggregate mark raised, a malformed
 * record is skipped, and a product no event names keeps its entry. Topics and groups are namespaced per run.
 */
import assert from "node:assert/strict";
import { createKafkaEventLog } from "../../../shared/adapters/kafka/mod.ts";
import { createRedisCache } from "../../../shared/adapters/redis/mod.ts";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import { prefixedEventLog } from "../../../shared/ports/prefixed_event_log.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { gqlProductVersionKey } from "../catalog/mod.ts";
import { startGraphqlCacheInvalidation } from "./cache_invalidation.ts";
import { gqlProductCacheKey } from "./product_cache.ts";

const WAIT_MS = 20_000;

function stockEvent(productId: string, reserved: number): string {
  const envelope = createEnvelope(
    stockAdjusted,
    { productId, sku: "SKU-1", delta: 0, reason: "test", onHand: 10, reserved },
    { producer: "test", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "c-1" },
  );
  return JSON.stringify(envelope);
}

Deno.test({
  name: "[kafka+redis] stock.adjusted events delete the GraphQL entries of the products they name, in batches",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const run = uniqueName("gqlinv");
    const kafka = createKafkaEventLog({ brokers: realInfra.kafkaBrokers, clientId: run });
    assert.equal(typeof kafka.subscribeBatches, "function", "the Kafka adapter takes batches");
    const eventLog = prefixedEventLog(kafka, `${run}.`);
    const cache = createRedisCache({ url: realInfra.redisUrl, keyPrefix: `${run}:` });
    const [a, b, untouched] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    const keys = [a, b, untouched].map(gqlProductCacheKey);
    const marks = [a, b, untouched].map(gqlProductVersionKey);
    try {
      await eventLog.ensureTopics([{ name: stockAdjusted.eventType, partitions: 1 }]);
      const subscription = await startGraphqlCacheInvalidation({ eventLog, cache, groupId: "graphql-cache" });
      try {
        await subscription.ready;
        for (const key of keys) await cache.set(key, '{"cached":true}');
        // One publish, one partition: the member receives these as one batch (or a few).
        await eventLog.publish(stockAdjusted.eventType, [
          { key: a, value: stockEvent(a, 1) },
          { key: "x", value: "not an envelope" },
          { key: b, value: stockEvent(b, 2) },
          { key: a, value: stockEvent(a, 3) },
        ]);
        const deadline = Date.now() + WAIT_MS;
        while ((await cache.get(keys[0])) !== null || (await cache.get(keys[1])) !== null) {
          if (Date.now() > deadline) assert.fail(`entries of ${a} and ${b} still cached after ${WAIT_MS} ms`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(await cache.get(keys[2]), '{"cached":true}', "a product no event names keeps its entry");
        // Raised before the delete: a GraphQL fill that read before the events (mark 0) can no longer land.
        assert.ok(Number(await cache.get(marks[0])) >= 1 && Number(await cache.get(marks[1])) >= 1);
        assert.equal(await cache.get(marks[2]), null);
      } finally {
        await subscription.close();
      }
    } finally {
      await cache.del(...keys, ...marks);
      await kafka.close();
      await cache.close();
    }
  },
});
