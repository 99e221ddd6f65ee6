/**
 * @module
 * How long after the 201 of `POST /api/v1/orders` the `order.created` envelope reaches a Kafka consumer:
 * orders at 50/s open loop to east's e-commerce deployable; a raw kafkajs consumer (its own group, joined
 * before the rounds) on `ecommerce.order.order.created.v1` notes when each envelope arrives; the span is
 * arrival − 201 (clamped at 0: the outbox row commits in the order's FIRST transaction and the relay is
 * nudged then, so the envelope can arrive before the order is RESERVED and answered — those are counted and
 * named in the label). Baseline: raw kafkajs idempotent producer (acks=all) → the same consumer, span from
 * `send()` to arrival, on a topic unique to the run (3 partitions, deleted at the end), at the same rate.
 */
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { createLatencyHistogram, resultOf, type Scenario } from "../harness.ts";
import { interleaveRounds, measureAtRate, type RateMeasurement } from "../open_loop.ts";
import { createArrivals } from "./_arrivals.ts";
import { acquirePlatform, releasePlatform, STOCKED_FOR_ORDERS } from "./_ecommerce_platform.ts";
import { postOrder } from "./_orders.ts";
import { joinedAndFetched, rawConsumerOf, withTimeout } from "./_kafka_raw.ts";

const NAME = "order_to_kafka";
const ORDER_CREATED_TOPIC = "ecommerce.order.order.created.v1";
const RATE_PER_SEC = 50;
const DURATION_MS_PER_ROUND = 3_300;
const WARMUP_MS = 500;
const MAX_IN_FLIGHT = 256;
const ROUNDS = 3;
const ARRIVAL_TIMEOUT_MS = 10_000;
const MAX_WAIT_TIME_MS = 500;
const READY_TIMEOUT_MS = 30_000;

export const orderToKafka: Scenario = {
  name: NAME,
  description:
    `201 of POST /api/v1/orders → order.created envelope at a kafkajs consumer (orders at ${RATE_PER_SEC}/s; ` +
    "outbox relay) vs raw kafkajs producer send → the same consumer",
  async run(ctx) {
    try {
      const platform = await acquirePlatform(ctx);
      const rawTopic = `${platform.runId}.bench.order-created`;
      const groupId = `${platform.runId}.bench.order-to-kafka`;
      const arrivals = createArrivals(ARRIVAL_TIMEOUT_MS, "the Kafka consumer");
      const kafka = new Kafka({
        clientId: `${platform.runId}-bench`,
        brokers: [...platform.kafkaBrokers],
        connectionTimeout: 3_000,
        requestTimeout: 10_000,
        logLevel: logLevel.WARN,
      });
      const admin = kafka.admin();
      const producer = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
        allowAutoTopicCreation: false,
      });
      const consumer = rawConsumerOf(kafka, groupId, MAX_WAIT_TIME_MS);
      let adminConnected = false;
      try {
        await admin.connect();
        adminConnected = true;
        await admin.createTopics({
          topics: [{ topic: rawTopic, numPartitions: 3, replicationFactor: 1 }],
          waitForLeaders: true,
          timeout: 10_000,
        });
        const ready = joinedAndFetched(consumer);
        await producer.connect();
        await consumer.connect();
        // The platform's topics carry its run prefix (BV_KAFKA_PREFIX).
        await consumer.subscribe({
          topics: [`${platform.runId}.${ORDER_CREATED_TOPIC}`, rawTopic],
          fromBeginning: false,
        });
        await consumer.run({
          eachMessage: ({ topic, message }) => {
            const atMs = performance.now();
            const text = message.value?.toString() ?? "";
            if (topic === rawTopic) arrivals.arrive(message.key?.toString() ?? "", atMs);
            else {
              try {
                const orderId = (JSON.parse(text) as { payload?: { orderId?: string } }).payload?.orderId;
                if (typeof orderId === "string") arrivals.arrive(orderId, atMs);
              } catch {
                // Not an envelope (another writer's record): not ours.
              }
            }
            return Promise.resolve();
          },
        });
        await withTimeout(ready, READY_TIMEOUT_MS, "The consumer did not join");

        const products = platform.products.slice(0, STOCKED_FOR_ORDERS);
        let n = 0;
        const order = async (): Promise<number> => {
          const product = products[n++ % products.length];
          const response = await postOrder(platform, product.id);
          const at201 = performance.now();
          const body = await response.json();
          if (response.status !== 201) {
            throw new Error(`POST /api/v1/orders answered ${response.status}: ${JSON.stringify(body)}`);
          }
          return (await arrivals.wait(body.id)) - at201;
        };
        let next = 0;
        const produce = async (): Promise<number> => {
          const id = `${platform.runId}-${next++}`;
          const sentAt = performance.now();
          await producer.send({
            topic: rawTopic,
            acks: -1,
            messages: [{ key: id, value: JSON.stringify({ payload: { orderId: id } }) }],
          });
          return (await arrivals.wait(id)) - sentAt;
        };

        const early = { count: 0 };
        const sides = await interleaveRounds(
          ROUNDS,
          () => spanRound("201 → consumer (outbox relay)", order, early),
          () => spanRound("kafkajs send → consumer", produce, { count: 0 }),
        );
        ctx.log(`${early.count} of ${sides.subject.count} envelopes arrived before their order's 201 (span 0)`);
        return resultOf(NAME, {
          subject: { ...sides.subject, label: `${sides.subject.label}; ${early.count} arrived before the 201` },
          baseline: sides.baseline,
        });
      } finally {
        arrivals.close();
        await Promise.allSettled([producer.disconnect(), consumer.disconnect()]);
        if (adminConnected) {
          await admin.deleteTopics({ topics: [rawTopic], timeout: 10_000 })
            .catch((error) => ctx.log(`could not delete topic ${rawTopic}: ${error}`));
          await admin.deleteGroups([groupId]).catch((error) => ctx.log(`could not delete group ${groupId}: ${error}`));
        }
        await admin.disconnect();
      }
    } finally {
      await releasePlatform(ctx, NAME);
    }
  },
};

/**
 * One open-loop round whose histogram holds the span each op returns (ms, clamped at 0) instead of the
 * time from its slot; the warm-up is a separate, unrecorded run at the same rate.
 */
async function spanRound(
  label: string,
  op: () => Promise<number>,
  negative: { count: number },
): Promise<RateMeasurement> {
  const options = { ratePerSec: RATE_PER_SEC, maxInFlight: MAX_IN_FLIGHT };
  await measureAtRate(label, op, { ...options, durationMs: WARMUP_MS });
  const spans = createLatencyHistogram();
  const measured = await measureAtRate(label, async () => {
    const spanMs = await op();
    if (spanMs < 0) negative.count++;
    spans.recordValue(Math.max(0, Math.round(spanMs * 1000)));
  }, { ...options, durationMs: DURATION_MS_PER_ROUND });
  return { ...measured, histogram: spans };
}
