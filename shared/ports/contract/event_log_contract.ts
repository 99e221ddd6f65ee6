/**
 * @module
 * The behaviour every {@linkcode EventLog} adapter must show, as one suite each adapter's test file runs:
 * `eventLogContract("kafka", makeLog)` registers tests named `[kafka] event log …`. Each test gets a fresh
 * log from `makeLog`, names its topics with `newTopic` (unique per run) and ends with `cleanup`.
 */
import assert from "node:assert/strict";
import { waitFor } from "./_wait_for.ts";
import { collectInto, type EventLogFixture, type Subscribe } from "./_event_log_kit.ts";
import { deliveryContract } from "./_event_log_delivery_contract.ts";
import { redeliveryContract } from "./_event_log_redelivery_contract.ts";

/** Re-exported so adapter-specific tests wait the same bounded way. */
export { waitFor };

/** Re-exported: what an adapter's test file hands the suite, and a handler that collects records. */
export { collectInto, type EventLogFixture };

/** Registers the event-log contract tests for one adapter. */
export function eventLogContract(kind: string, makeLog: () => Promise<EventLogFixture>): void {
  function contractTest(name: string, body: (fixture: EventLogFixture, subscribe: Subscribe) => Promise<void>) {
    Deno.test(`[${kind}] event log ${name}`, async () => {
      const fixture = await makeLog();
      const subscriptions: { close(): Promise<void> }[] = [];
      const subscribe: Subscribe = async (options) => {
        const subscription = await fixture.log.subscribe(options);
        subscriptions.push(subscription);
        await subscription.ready;
        return subscription;
      };
      try {
        await body(fixture, subscribe);
      } finally {
        await Promise.allSettled(subscriptions.map((subscription) => subscription.close()));
        await fixture.cleanup();
      }
    });
  }

  deliveryContract(contractTest);
  redeliveryContract(contractTest);

  contractTest("creates topics idempotently and answers ping", async ({ log, newTopic }) => {
    const topic = newTopic("admin");
    await log.ensureTopics([{ name: topic, partitions: 2 }]);
    await log.ensureTopics([{ name: topic, partitions: 2 }]);
    await log.ping(5_000);
  });

  contractTest("rejects publish after close", async ({ log, newTopic }) => {
    const topic = newTopic("closed");
    await log.ensureTopics([{ name: topic }]);
    await log.publish(topic, [{ key: "k", value: "before" }]);
    await log.close();
    await assert.rejects(() => log.publish(topic, [{ key: "k", value: "after" }]), /closed/);
  });
}
