/** @module Reads what reached Kafka: every envelope on some topics, for journeys to assert on. */
import { createKafkaEventLog } from "../../shared/adapters/kafka/mod.ts";
import { type Envelope, parseEnvelope } from "../../shared/contracts/envelope.ts";
import "../../shared/contracts/events/ecommerce.ts";
import type { IncomingRecord, Subscription } from "../../shared/ports/mod.ts";
import { uniqueName } from "../../shared/testing/unique.ts";

export interface KafkaProbe {
  readonly records: IncomingRecord[];
  /** Envelopes seen so far that parse against the event registry. */
  envelopes(): Envelope[];
  /** Waits until `predicate` holds over the envelopes seen. */
  waitFor(what: string, predicate: (envelopes: Envelope[]) => boolean, timeoutMs?: number): Promise<Envelope[]>;
  close(): Promise<void>;
}

export async function probeKafka(brokers: readonly string[], topics: readonly string[]): Promise<KafkaProbe> {
  const log = createKafkaEventLog({ brokers: [...brokers], clientId: uniqueName("probe") });
  await log.ensureTopics(topics.map((name) => ({ name, partitions: 3 })));
  const records: IncomingRecord[] = [];
  const subscription: Subscription = await log.subscribe({
    groupId: uniqueName("probe"),
    topics,
    from: "earliest",
    handler: (record) => {
      records.push(record);
      return Promise.resolve();
    },
  });
  await subscription.ready;
  const envelopes = () =>
    records.flatMap((r) => {
      const parsed = parseEnvelope(r.value);
      return parsed.ok ? [parsed.envelope] : [];
    });
  return {
    records,
    envelopes,
    async waitFor(what, predicate, timeoutMs = 15_000) {
      const started = Date.now();
      while (!predicate(envelopes())) {
        if (Date.now() - started > timeoutMs) throw new Error(`${what}: not on Kafka within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return envelopes();
    },
    async close() {
      await subscription.close();
      await log.close();
    },
  };
}
