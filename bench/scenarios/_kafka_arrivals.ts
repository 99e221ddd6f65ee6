/**
 * @module
 * Where an event's time goes: a kafkajs consumer (a group of its own, joined before the rounds) notes when
 * each `order.created` envelope reaches Kafka's consumers, so a push scenario can split its span into
 * "request → Kafka" and "Kafka → client". Diagnosis only: it is logged, not part of the compared sides.
 */
import { Kafka, logLevel } from "kafkajs";
import { joinedAndFetched, withTimeout } from "./_kafka_raw.ts";

export interface KafkaArrivals {
  /** When the envelope of `orderId` arrived (performance.now() ms), if it did. */
  at(orderId: string): number | undefined;
  close(): Promise<void>;
}

const JOIN_TIMEOUT_MS = 30_000;
/** Arrivals kept at most (a run makes a few hundred orders). */
const KEPT_MAX = 100_000;

export async function watchOrderCreated(brokers: readonly string[], topic: string, groupId: string) {
  const kafka = new Kafka({ clientId: groupId, brokers: [...brokers], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
  const admin = kafka.admin();
  const arrived = new Map<string, number>();
  const ready = joinedAndFetched(consumer);
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: false });
  await consumer.run({
    eachMessage: ({ message }) => {
      const atMs = performance.now();
      try {
        const orderId = JSON.parse(message.value?.toString() ?? "").payload?.orderId;
        if (typeof orderId === "string" && arrived.size < KEPT_MAX) arrived.set(orderId, atMs);
      } catch {
        // Not an envelope: not ours.
      }
      return Promise.resolve();
    },
  });
  await withTimeout(ready, JOIN_TIMEOUT_MS, "The stage consumer did not join");
  return {
    at: (orderId: string) => arrived.get(orderId),
    async close() {
      await consumer.disconnect().catch(() => {});
      await admin.connect().then(() => admin.deleteGroups([groupId])).catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  } satisfies KafkaArrivals;
}
