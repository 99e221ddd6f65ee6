/**
 * @module
 * The behaviour every {@linkcode EventLog} adapter must show, as one suite each adapter's test file runs:
 * `eventLogContract("kafka", makeLog)` registers tests named `[kafka] event log …`. Each test gets a fresh
 * log from `makeLog`, names its topics with `newTopic` (unique per run) and ends with `cleanup`.
 */
import assert from "node:assert/strict";
import { waitFor } from "./_wait_for.ts";
import {
  DLQ_HEADERS,
  dlqTopicOf,
  type EventLog,
  type IncomingRecord,
  RetryLaterError,
  type SubscribeOptions,
} from "../event_log.ts";

/** Re-exported so adapter-specific tests wait the same bounded way. */
export { waitFor };

/** What a contract test needs from the adapter under test. */
export interface EventLogFixture {
  readonly log: EventLog;
  /** A topic name unique to this run; the fixture deletes it (and its dead-letter topic) in `cleanup`. */
  readonly newTopic: (name: string) => string;
  /** Closes the log and removes what the test created. */
  readonly cleanup: () => Promise<void>;
}

/** Longest any single expectation may take; Kafka group joins are the slow part (~1 s each). */
const WAIT_MS_MAX = 20_000;

/** A handler that appends `pick(record)` to `list`. */
export function collectInto<T>(
  list: T[],
  pick: (record: IncomingRecord) => T,
): (record: IncomingRecord) => Promise<void> {
  return (record) => {
    list.push(pick(record));
    return Promise.resolve();
  };
}

/** A gate a handler can wait on; `open()` lets it through. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => open = resolve);
  return { wait, open };
}

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

  contractTest("keeps order per key across many interleaved keys", async ({ log, newTopic }, subscribe) => {
    const topic = newTopic("order");
    await log.ensureTopics([{ name: topic, partitions: 3 }]);
    const keys = Array.from({ length: 12 }, (_, i) => `customer-${i}`);
    const perKey = 15;
    // Each publish interleaves every key, and the sequence numbers grow across publishes.
    for (let batch = 0; batch < 3; batch++) {
      const records = [];
      for (let n = batch * 5; n < (batch + 1) * 5; n++) {
        for (const key of keys) records.push({ key, value: String(n) });
      }
      await log.publish(topic, records);
    }
    const seen = new Map<string, { values: number[]; partitions: Set<number> }>();
    let total = 0;
    await subscribe({
      groupId: newTopic("order_group"),
      topics: [topic],
      from: "earliest",
      handler: (record) => {
        const entry = seen.get(record.key) ?? { values: [], partitions: new Set() };
        entry.values.push(Number(record.value));
        entry.partitions.add(record.partition);
        seen.set(record.key, entry);
        total++;
        return Promise.resolve();
      },
    });
    await waitFor("every record", () => total >= keys.length * perKey, { timeoutMs: WAIT_MS_MAX });
    const expected = Array.from({ length: perKey }, (_, n) => n);
    for (const key of keys) {
      assert.deepEqual(seen.get(key)?.values, expected, `order of ${key}`);
      assert.equal(seen.get(key)?.partitions.size, 1, `${key} stays in one partition`);
    }
    assert.equal(total, keys.length * perKey);
  });

  contractTest("round-trips keys, values and headers", async ({ log, newTopic }, subscribe) => {
    const topic = newTopic("headers");
    await log.ensureTopics([{ name: topic }]);
    const headers = {
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "x-bv-event-type": "OrderPlaced",
      "x-bv-origin-region": "east",
      note: "ünïcødé ✓",
    };
    const publishedAtMs = Date.now();
    await log.publish(topic, [
      { key: "order-1", value: JSON.stringify({ total: 42 }), headers },
      { key: "order-1", value: "" },
    ]);
    const received: IncomingRecord[] = [];
    await subscribe({
      groupId: newTopic("headers_group"),
      topics: [topic],
      from: "earliest",
      handler: collectInto(received, (record) => record),
    });
    await waitFor("both records", () => received.length >= 2, { timeoutMs: WAIT_MS_MAX });
    const [first, second] = received;
    assert.equal(first.topic, topic);
    assert.equal(first.key, "order-1");
    assert.equal(first.value, JSON.stringify({ total: 42 }));
    assert.deepEqual({ ...first.headers }, headers);
    assert.deepEqual({ ...second.headers }, {});
    assert.equal(second.value, "");
    assert.match(first.offset, /^\d+$/);
    assert.equal(BigInt(second.offset), BigInt(first.offset) + 1n);
    assert.ok(Math.abs(first.timestampMs - publishedAtMs) < 60_000, `timestamp ${first.timestampMs} is recent`);
  });

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

  contractTest("gives every record to each of two groups", async ({ log, newTopic }, subscribe) => {
    const topic = newTopic("fanout");
    await log.ensureTopics([{ name: topic }]);
    const values = Array.from({ length: 20 }, (_, i) => `event-${i}`);
    await log.publish(topic, values.map((value, i) => ({ key: `key-${i % 7}`, value })));
    const byGroup = [new Set<string>(), new Set<string>()];
    for (const [index, seen] of byGroup.entries()) {
      await subscribe({
        groupId: newTopic(`fanout_group_${index}`),
        topics: [topic],
        from: "earliest",
        handler: (record) => {
          seen.add(record.value);
          return Promise.resolve();
        },
      });
    }
    await waitFor("both groups", () => byGroup.every((seen) => seen.size >= values.length), { timeoutMs: WAIT_MS_MAX });
    for (const seen of byGroup) assert.deepEqual([...seen].sort(), [...values].sort());
  });

  contractTest("delivers a trickle of records to a member with a batch window, in order, within the window", async (
    { log, newTopic },
    subscribe,
  ) => {
    const topic = newTopic("window");
    await log.ensureTopics([{ name: topic, partitions: 1 }]);
    const windowMs = 300;
    const arrivals: { value: string; atMs: number }[] = [];
    await subscribe({
      groupId: newTopic("window_group"),
      topics: [topic],
      batchWindowMs: windowMs,
      handler: (record) => {
        arrivals.push({ value: record.value, atMs: performance.now() });
        return Promise.resolve();
      },
    });
    const sentAtMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      await log.publish(topic, [{ key: "k", value: `v${i}` }]);
      sentAtMs.push(performance.now());
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    await waitFor("the windowed member's records", () => arrivals.length >= 5, { timeoutMs: WAIT_MS_MAX });
    assert.deepEqual(arrivals.map((a) => a.value), ["v0", "v1", "v2", "v3", "v4"]);
    // Held at most one window (plus scheduling slack on a busy machine), never lost in it.
    for (const [i, arrival] of arrivals.entries()) assert.ok(arrival.atMs - sentAtMs[i] < windowMs + 700);
  });

  contractTest("rejects a batch window that is not a whole number of ms from 0 to 1,000", async (
    { log, newTopic },
  ) => {
    const topic = newTopic("window_bad");
    await log.ensureTopics([{ name: topic }]);
    const handler = () => Promise.resolve();
    for (const batchWindowMs of [-1, 1.5, 1_001, Number.NaN]) {
      await assert.rejects(
        () => log.subscribe({ groupId: newTopic("window_bad_group"), topics: [topic], batchWindowMs, handler }),
        RangeError,
      );
    }
  });

  contractTest("shares partitions among the members of one group", async ({ log, newTopic }, subscribe) => {
    const topic = newTopic("share");
    const groupId = newTopic("share_group");
    await log.ensureTopics([{ name: topic, partitions: 3 }]);
    const byMember = [[] as string[], [] as string[]];
    for (const handled of byMember) {
      await subscribe({
        groupId,
        topics: [topic],
        from: "earliest",
        handler: collectInto(handled, (record) => record.value),
      });
    }
    const values = Array.from({ length: 30 }, (_, i) => `event-${i}`);
    await log.publish(topic, values.map((value) => ({ key: value, value })));
    await waitFor("all records", () => byMember[0].length + byMember[1].length >= values.length, {
      timeoutMs: WAIT_MS_MAX,
    });
    const all = [...byMember[0], ...byMember[1]];
    assert.deepEqual([...all].sort(), [...values].sort(), "each record handled exactly once");
    assert.ok(
      byMember.every((handled) => handled.length > 0),
      `both members got work: ${byMember.map((h) => h.length)}`,
    );
  });

  contractTest("starts a new group at the end with from: latest and at the start with earliest", async (
    { log, newTopic },
    subscribe,
  ) => {
    const topic = newTopic("from");
    await log.ensureTopics([{ name: topic }]);
    await log.publish(topic, [{ key: "k", value: "old-1" }, { key: "k", value: "old-2" }]);
    const latest: string[] = [];
    const earliest: string[] = [];
    await subscribe({
      groupId: newTopic("from_latest"),
      topics: [topic],
      from: "latest",
      handler: collectInto(latest, (record) => record.value),
    });
    await subscribe({
      groupId: newTopic("from_earliest"),
      topics: [topic],
      from: "earliest",
      handler: collectInto(earliest, (record) => record.value),
    });
    await log.publish(topic, [{ key: "k", value: "new-1" }]);
    await waitFor("both groups", () => earliest.length >= 3 && latest.length >= 1, { timeoutMs: WAIT_MS_MAX });
    assert.deepEqual(earliest, ["old-1", "old-2", "new-1"]);
    assert.deepEqual(latest, ["new-1"]);
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

type Subscribe = (options: SubscribeOptions) => Promise<{ close(): Promise<void> }>;
