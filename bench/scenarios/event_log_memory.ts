/**
 * @module
 * The embedded event log (publish, then the consumer-group member's handler sees the record and commits)
 * against the smallest in-process hand-off there is: `EventTarget.dispatchEvent` to a listener. A sample is
 * 10 sequential round trips: the baseline's single hand-off takes about a microsecond, the resolution of
 * the histogram.
 */
import { createMemoryEventLog } from "../../shared/adapters/memory/mod.ts";
import { compare, resultOf, type Scenario } from "../harness.ts";
import { createRendezvous } from "../rendezvous.ts";
import { idSequence } from "./_endpoints.ts";

const ROUND_TRIPS_PER_SAMPLE = 10;
const TOPIC = "bench.event_log_memory";

export const eventLogMemory: Scenario = {
  name: "event_log_memory",
  description:
    `${ROUND_TRIPS_PER_SAMPLE} × (publish one record → handler runs) through createMemoryEventLog() vs EventTarget dispatch → listener`,
  async run() {
    const rendezvous = createRendezvous({ timeoutMs: 5_000 });
    const log = createMemoryEventLog({ partitionsDefault: 1 });
    const target = new EventTarget();
    const nextId = idSequence("m");
    try {
      await log.ensureTopics([{ name: TOPIC, partitions: 1 }]);
      const subscription = await log.subscribe({
        groupId: "bench",
        topics: [TOPIC],
        from: "latest",
        handler: (record) => Promise.resolve(void rendezvous.arrive(record.key)),
      });
      await subscription.ready;
      target.addEventListener(TOPIC, (event) => rendezvous.arrive((event as CustomEvent<string>).detail));
      const sides = await compare(
        {
          label: `createMemoryEventLog ×${ROUND_TRIPS_PER_SAMPLE}`,
          op: async () => {
            for (let i = 0; i < ROUND_TRIPS_PER_SAMPLE; i++) {
              const id = nextId();
              const consumed = rendezvous.expect(id);
              await log.publish(TOPIC, [{ key: id, value: "x" }]);
              await consumed;
            }
          },
        },
        {
          label: `EventTarget ×${ROUND_TRIPS_PER_SAMPLE}`,
          op: async () => {
            for (let i = 0; i < ROUND_TRIPS_PER_SAMPLE; i++) {
              const id = nextId();
              const consumed = rendezvous.expect(id);
              target.dispatchEvent(new CustomEvent(TOPIC, { detail: id }));
              await consumed;
            }
          },
        },
        { iterationsPerRound: 2_000, warmupPerRound: 200, concurrency: 1, timeCapMsPerRound: 2_000 },
      );
      await subscription.close();
      return resultOf("event_log_memory", sides);
    } finally {
      rendezvous.close();
      await log.close();
    }
  },
};
