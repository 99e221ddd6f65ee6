/**
 * @module
 * The redelivery part of the event-log contract: offsets committed only after a handler succeeds, records
 * redelivered after a dead member or a failed handler, dead-lettering, and `RetryLaterError`.
 */
import assert from "node:assert/strict";
import { DLQ_HEADERS, dlqTopicOf, type IncomingRecord, RetryLaterError } from "../event_log.ts";
import { collectInto, type ContractTest, gate, WAIT_MS_MAX } from "./_event_log_kit.ts";
import { waitFor } from "./_wait_for.ts";

/** Registers the commit, redelivery and dead-letter tests through `contractTest`. */
export function redeliveryContract(contractTest: ContractTest): void {
  contractTest("commits only after the handler succeeds, so a new member resumes after it", async (
    { log, newTopic },
    subscribe,
  ) => {
    const topic = newTopic("resume");
    const groupId = newTopic("resume_group");
    await log.ensureTopics([{ name: topic }]);
    // One key, so one partition: a redelivered early record would arrive before the later one.
    await log.publish(topic, ["a", "b", "c"].map((value) => ({ key: "k", value })));
    const firstRun: string[] = [];
    const first = await subscribe({
      groupId,
      topics: [topic],
      from: "earliest",
      handler: collectInto(firstRun, (record) => record.value),
    });
    await waitFor("the first member to handle a, b, c", () => firstRun.length >= 3, { timeoutMs: WAIT_MS_MAX });
    await first.close();

    await log.publish(topic, [{ key: "k", value: "d" }]);
    const secondRun: string[] = [];
    await subscribe({
      groupId,
      topics: [topic],
      from: "earliest",
      handler: collectInto(secondRun, (record) => record.value),
    });
    await waitFor("the second member to handle d", () => secondRun.length >= 1, { timeoutMs: WAIT_MS_MAX });
    assert.deepEqual(firstRun, ["a", "b", "c"]);
    assert.deepEqual(secondRun, ["d"]);
  });

  contractTest("redelivers a record whose member died before committing it", async ({ log, newTopic }, subscribe) => {
    const topic = newTopic("redeliver");
    const groupId = newTopic("redeliver_group");
    await log.ensureTopics([{ name: topic }]);
    await log.publish(topic, [{ key: "k", value: "first" }, { key: "k", value: "second" }]);
    const stuck = gate();
    const firstMember: IncomingRecord[] = [];
    const dying = await subscribe({
      groupId,
      topics: [topic],
      from: "earliest",
      handler: async (record) => {
        firstMember.push(record);
        // The member "dies" holding the second record: its handler never finishes in time.
        if (record.value === "second") await stuck.wait;
      },
    });
    try {
      await waitFor("the first member to take the second record", () => firstMember.length >= 2, {
        timeoutMs: WAIT_MS_MAX,
      });
      await dying.close();

      const secondMember: IncomingRecord[] = [];
      await subscribe({
        groupId,
        topics: [topic],
        from: "earliest",
        handler: collectInto(secondMember, (record) => record),
      });
      await waitFor("the second member to receive the record", () => secondMember.length >= 1, {
        timeoutMs: WAIT_MS_MAX,
      });
      assert.equal(secondMember[0].value, "second");
      assert.equal(secondMember[0].offset, firstMember[1].offset);
      assert.equal(secondMember[0].partition, firstMember[1].partition);
      assert.deepEqual(secondMember.map((r) => r.value), ["second"]);
    } finally {
      stuck.open();
    }
  });

  contractTest("redelivers a record whose handler fails and then succeeds, keeping the key's order", async (
    { log, newTopic },
    subscribe,
  ) => {
    const topic = newTopic("flaky");
    await log.ensureTopics([{ name: topic }]);
    await log.publish(topic, [{ key: "k", value: "flaky" }, { key: "k", value: "after" }]);
    const events: string[] = [];
    const attempts = new Map<string, number>();
    await subscribe({
      groupId: newTopic("flaky_group"),
      topics: [topic],
      from: "earliest",
      maxAttempts: 5,
      handler: (record) => {
        const attempt = (attempts.get(record.value) ?? 0) + 1;
        attempts.set(record.value, attempt);
        if (record.value === "flaky" && attempt <= 2) {
          events.push(`${record.value}#${attempt} failed`);
          return Promise.reject(new Error(`transient failure ${attempt}`));
        }
        events.push(`${record.value}#${attempt} ok`);
        return Promise.resolve();
      },
    });
    await waitFor("the record after the flaky one", () => events.includes("after#1 ok"), { timeoutMs: WAIT_MS_MAX });
    assert.deepEqual(events, ["flaky#1 failed", "flaky#2 failed", "flaky#3 ok", "after#1 ok"]);
  });

  contractTest("dead-letters a record whose handler always fails, with the error, and moves past it", async (
    { log, newTopic },
    subscribe,
  ) => {
    const topic = newTopic("poison");
    const groupId = newTopic("poison_group");
    await log.ensureTopics([{ name: topic }, { name: dlqTopicOf(topic) }]);
    await log.publish(topic, [
      { key: "k", value: "poison", headers: { "x-bv-event-type": "OrderPlaced" } },
      { key: "k", value: "healthy" },
    ]);
    const deadLetters: IncomingRecord[] = [];
    await subscribe({
      groupId: newTopic("poison_dlq_reader"),
      topics: [dlqTopicOf(topic)],
      from: "earliest",
      handler: collectInto(deadLetters, (record) => record),
    });
    const failures: IncomingRecord[] = [];
    const handled: string[] = [];
    const main = await subscribe({
      groupId,
      topics: [topic],
      from: "earliest",
      maxAttempts: 3,
      handler: (record) => {
        if (record.value === "poison") {
          failures.push(record);
          return Promise.reject(new Error(`Cannot handle "${record.value}"`));
        }
        handled.push(record.value);
        return Promise.resolve();
      },
    });
    await waitFor("the dead letter", () => deadLetters.length >= 1 && handled.includes("healthy"), {
      timeoutMs: WAIT_MS_MAX,
    });
    assert.equal(failures.length, 3, "three attempts, then the dead-letter topic");
    const [dead] = deadLetters;
    const poison = failures[0];
    assert.equal(dead.key, "k");
    assert.equal(dead.value, "poison");
    assert.match(dead.headers[DLQ_HEADERS.error], /Cannot handle "poison"/);
    assert.equal(dead.headers[DLQ_HEADERS.originalTopic], topic);
    assert.equal(dead.headers[DLQ_HEADERS.originalPartition], String(poison.partition));
    assert.equal(dead.headers[DLQ_HEADERS.originalOffset], poison.offset);
    assert.equal(dead.headers[DLQ_HEADERS.attempts], "3");
    assert.equal(dead.headers["x-bv-event-type"], "OrderPlaced", "the original headers travel along");

    // The group committed past the poison record: a new member does not see it again.
    await main.close();
    await log.publish(topic, [{ key: "k", value: "marker" }]);
    const afterRestart: string[] = [];
    await subscribe({
      groupId,
      topics: [topic],
      from: "earliest",
      handler: collectInto(afterRestart, (record) => record.value),
    });
    await waitFor("the marker", () => afterRestart.length >= 1, { timeoutMs: WAIT_MS_MAX });
    assert.deepEqual(afterRestart, ["marker"]);
  });

  contractTest("retries a RetryLaterError past maxAttempts without dead-lettering; other failures still count", async (
    { log, newTopic },
    subscribe,
  ) => {
    const topic = newTopic("later");
    await log.ensureTopics([{ name: topic }, { name: dlqTopicOf(topic) }]);
    // "outage": the dependency is down for 4 deliveries, then one real failure, then it works.
    // "broken": down for 2 deliveries, then fails for real every time: dead-lettered on its 2nd counted failure.
    await log.publish(topic, [{ key: "k", value: "outage" }, { key: "k", value: "broken" }, {
      key: "k",
      value: "after",
    }]);
    const deadLetters: IncomingRecord[] = [];
    await subscribe({
      groupId: newTopic("later_dlq_reader"),
      topics: [dlqTopicOf(topic)],
      from: "earliest",
      handler: collectInto(deadLetters, (record) => record),
    });
    const events: string[] = [];
    const deliveries = new Map<string, number>();
    await subscribe({
      groupId: newTopic("later_group"),
      topics: [topic],
      from: "earliest",
      maxAttempts: 2,
      handler: (record) => {
        const n = (deliveries.get(record.value) ?? 0) + 1;
        deliveries.set(record.value, n);
        const outageFor = record.value === "outage" ? 4 : record.value === "broken" ? 2 : 0;
        if (n <= outageFor) return Promise.reject(new RetryLaterError(`dependency down (${n})`));
        if (record.value === "outage" && n === outageFor + 1) return Promise.reject(new Error("one real failure"));
        if (record.value === "broken") return Promise.reject(new Error("always fails"));
        events.push(`${record.value}#${n}`);
        return Promise.resolve();
      },
    });
    await waitFor("the record after both", () => events.some((e) => e.startsWith("after")) && deadLetters.length >= 1, {
      timeoutMs: WAIT_MS_MAX,
    });
    assert.deepEqual(
      events,
      ["outage#6", "after#1"],
      "the outage outlasted maxAttempts and the record was still applied",
    );
    assert.equal(deliveries.get("broken"), 4, "2 uncounted deliveries, then 2 counted failures");
    assert.deepEqual(deadLetters.map((d) => d.value), ["broken"], "only the record that failed for real");
    assert.equal(deadLetters[0].headers[DLQ_HEADERS.attempts], "4");
    assert.match(deadLetters[0].headers[DLQ_HEADERS.error], /always fails/);
  });
}
