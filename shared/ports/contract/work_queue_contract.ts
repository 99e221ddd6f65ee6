/**
 * @module
 * The behaviour every {@linkcode WorkQueue} adapter must show, written once and run against each adapter
 * (`workQueueContract("amqp", …)`, `workQueueContract("memory", …)`). RabbitMQ is the reference.
 */

import assert from "node:assert/strict";
import type { QueueMessage, WorkQueue } from "../work_queue.ts";
import { dlqQueueOf, RetryLaterError } from "../work_queue.ts";
import { delay, waitFor } from "./_wait_for.ts";

/** A fresh work queue, a way to name queues no other test uses, and how to remove what the test left. */
export type MakeQueue = () => Promise<{
  queue: WorkQueue;
  newQueueName: (name: string) => string;
  /** Closes every instance the fixture made (`queue` and those of `reopen`) and removes what the test left. */
  cleanup: () => Promise<void>;
  /**
   * Another instance on the same storage, as the next process after a restart gets it (a new connection to
   * the broker; the same data directory). Called after `queue` was closed. Required with `durable: true`.
   */
  reopen?: () => Promise<WorkQueue>;
}>;

/** What an adapter under test promises beyond the basics. */
export interface WorkQueueContractOptions {
  /**
   * Messages survive a restart of the process: RabbitMQ's durable queues and persistent messages, the
   * embedded queue with a data directory. Adds the restart test; the fixture must offer `reopen`.
   */
  readonly durable?: boolean;
}

/** How long we watch for something that must NOT happen (an extra delivery) after the expected outcome. */
const quietPeriodMs = 300;

/** Registers the work-queue contract tests, named `[<kind>] work queue …`. */
export function workQueueContract(kind: string, makeQueue: MakeQueue, options: WorkQueueContractOptions = {}): void {
  function test(
    name: string,
    body: (queue: WorkQueue, newQueueName: (name: string) => string) => Promise<void>,
  ): void {
    Deno.test(`[${kind}] work queue ${name}`, async () => {
      const { queue, newQueueName, cleanup } = await makeQueue();
      try {
        await body(queue, newQueueName);
      } finally {
        await cleanup();
      }
    });
  }

  test("delivers a published message with its id and headers, once it is acked", async (queue, newQueueName) => {
    const name = newQueueName("orders");
    await queue.declare({ name });
    await queue.publish(name, "order #1 ✓", { id: "order-1", headers: { "x-trace": "t-1" } });
    await queue.publish(name, "no id given");
    const received: QueueMessage[] = [];
    const consumer = await queue.consume(name, (message) => Promise.resolve(void received.push(message)));
    await waitFor("two messages", () => received.length === 2);
    assert.deepEqual(received[0], { id: "order-1", body: "order #1 ✓", headers: { "x-trace": "t-1" }, attempt: 1 });
    assert.equal(received[1].body, "no id given");
    assert.ok(received[1].id.length > 0, "a message without an id gets one");
    assert.notEqual(received[1].id, received[0].id);

    await consumer.cancel();
    const afterAck: QueueMessage[] = [];
    const second = await queue.consume(name, (message) => Promise.resolve(void afterAck.push(message)));
    await delay(quietPeriodMs);
    assert.deepEqual(afterAck, [], "acked messages are gone");
    await second.cancel();
  });

  test(
    "retries a failing message after the configured delays, then handles it exactly once",
    async (queue, newQueueName) => {
      const name = newQueueName("retry");
      await queue.declare({ name, retryDelaysMs: [100, 200] });
      const attempts: { attempt: number; atMs: number; error?: string; trace?: string }[] = [];
      let successes = 0;
      const consumer = await queue.consume(name, (message) => {
        attempts.push({
          attempt: message.attempt,
          atMs: performance.now(),
          error: message.headers["x-bv-error"],
          trace: message.headers["x-trace"],
        });
        if (message.attempt < 3) return Promise.reject(new Error(`flaky #${message.attempt}`));
        successes++;
        return Promise.resolve();
      });
      await queue.publish(name, "payload", { id: "m-retry", headers: { "x-trace": "t-9" } });
      await waitFor("the third attempt to succeed", () => successes === 1, { timeoutMs: 5_000 });
      await delay(quietPeriodMs);
      assert.deepEqual(attempts.map((a) => a.attempt), [1, 2, 3]);
      assert.equal(successes, 1);
      const firstGapMs = attempts[1].atMs - attempts[0].atMs;
      const secondGapMs = attempts[2].atMs - attempts[1].atMs;
      assert.ok(firstGapMs >= 90, `first retry after ${firstGapMs} ms, expected ≥ 100 ms`);
      assert.ok(secondGapMs >= 190, `second retry after ${secondGapMs} ms, expected ≥ 200 ms`);
      assert.equal(attempts[0].error, undefined);
      assert.match(attempts[1].error ?? "", /flaky #1/);
      assert.match(attempts[2].error ?? "", /flaky #2/);
      assert.deepEqual(attempts.map((a) => a.trace), ["t-9", "t-9", "t-9"], "headers survive retries");
      await consumer.cancel();
    },
  );

  test("dead-letters a message that always fails after exactly 1 + retries attempts", async (queue, newQueueName) => {
    const name = newQueueName("doomed");
    await queue.declare({ name, retryDelaysMs: [50, 100] });
    let attempts = 0;
    const consumer = await queue.consume(name, (message) => {
      attempts++;
      return Promise.reject(new Error(`boom on attempt ${message.attempt}`));
    });
    await queue.publish(name, "poison", { id: "m-poison", headers: { "x-trace": "t-2" } });

    // A DLQ is consumed like any queue, so it is declared like one (its own failures go to `.dlq.dlq`).
    await queue.declare({ name: dlqQueueOf(name) });
    const deadLetters: QueueMessage[] = [];
    const dlqConsumer = await queue.consume(dlqQueueOf(name), (message) => {
      deadLetters.push(message);
      return Promise.resolve();
    });
    await waitFor("the message in the DLQ", () => deadLetters.length === 1, { timeoutMs: 5_000 });
    await delay(quietPeriodMs);
    assert.equal(attempts, 3);
    assert.equal(deadLetters.length, 1);
    const [dead] = deadLetters;
    assert.equal(dead.id, "m-poison");
    assert.equal(dead.body, "poison");
    assert.equal(dead.headers["x-trace"], "t-2");
    assert.match(dead.headers["x-bv-error"], /boom on attempt 3/);
    assert.equal(dead.headers["x-bv-attempts"], "3");
    await consumer.cancel();
    await dlqConsumer.cancel();
  });

  test("dead-letters at once when no retries are configured", async (queue, newQueueName) => {
    const name = newQueueName("noretry");
    await queue.declare({ name });
    let attempts = 0;
    const consumer = await queue.consume(name, () => Promise.reject(new Error(`attempt ${++attempts}`)));
    await queue.publish(name, "x", { id: "m-once" });
    await queue.declare({ name: dlqQueueOf(name) });
    const deadLetters: QueueMessage[] = [];
    const dlqConsumer = await queue.consume(dlqQueueOf(name), (m) => Promise.resolve(void deadLetters.push(m)));
    await waitFor("the message in the DLQ", () => deadLetters.length === 1);
    assert.equal(attempts, 1);
    assert.match(deadLetters[0].headers["x-bv-error"], /attempt 1/);
    await consumer.cancel();
    await dlqConsumer.cancel();
  });

  test("delivers again at the same attempt after RetryLaterError, without a retry step or the DLQ", async (
    queue,
    newQueueName,
  ) => {
    const name = newQueueName("later");
    // No retries configured: any counted failure would dead-letter at once.
    await queue.declare({ name });
    await queue.declare({ name: dlqQueueOf(name) });
    const deadLetters: QueueMessage[] = [];
    const dlqConsumer = await queue.consume(dlqQueueOf(name), (m) => Promise.resolve(void deadLetters.push(m)));
    const deliveries: { attempt: number; atMs: number }[] = [];
    const consumer = await queue.consume(name, (message) => {
      deliveries.push({ attempt: message.attempt, atMs: Date.now() });
      // The dependency is down for 3 deliveries, then back.
      if (deliveries.length <= 3) return Promise.reject(new RetryLaterError("database down"));
      return Promise.resolve();
    }, { retryLaterDelayMs: 100 });
    await queue.publish(name, "x", { id: "m-later" });
    await waitFor("the 4th delivery", () => deliveries.length === 4);
    await delay(quietPeriodMs);
    assert.equal(deliveries.length, 4, "acked on the 4th delivery: no more");
    assert.deepEqual(deliveries.map((d) => d.attempt), [1, 1, 1, 1], "the attempt does not advance");
    for (let i = 1; i < deliveries.length; i++) {
      assert.ok(deliveries[i].atMs - deliveries[i - 1].atMs >= 90, `delivery ${i + 1} waited the delay`);
    }
    assert.deepEqual(deadLetters, []);
    await consumer.cancel();
    await dlqConsumer.cancel();
    await assert.rejects(
      () => queue.consume(name, () => Promise.resolve(), { retryLaterDelayMs: 0 }),
      RangeError,
    );
  });

  test("runs at most `prefetch` handlers at once per consumer", async (queue, newQueueName) => {
    const name = newQueueName("prefetch");
    await queue.declare({ name });
    for (let i = 0; i < 10; i++) await queue.publish(name, `job ${i}`);
    let running = 0;
    let runningMax = 0;
    const done: string[] = [];
    const consumer = await queue.consume(name, async (message) => {
      running++;
      runningMax = Math.max(runningMax, running);
      await delay(50);
      running--;
      done.push(message.body);
    }, { prefetch: 3 });
    await waitFor("all ten jobs", () => done.length === 10, { timeoutMs: 5_000 });
    assert.equal(runningMax, 3);
    assert.deepEqual(new Set(done), new Set(Array.from({ length: 10 }, (_, i) => `job ${i}`)));
    await consumer.cancel();
  });

  test(
    "gives an unacked message to the next consumer when its consumer is cancelled mid-handler",
    async (queue, newQueueName) => {
      const name = newQueueName("handover");
      await queue.declare({ name });
      await queue.publish(name, "in flight", { id: "m-handover" });
      let started!: () => void;
      const handlerStarted = new Promise<void>((resolve) => started = resolve);
      let release!: () => void;
      const handlerReleased = new Promise<void>((resolve) => release = resolve);
      const first = await queue.consume(name, async () => {
        started();
        await handlerReleased;
      });
      await handlerStarted;
      await first.cancel();

      const redelivered: QueueMessage[] = [];
      const second = await queue.consume(name, (message) => Promise.resolve(void redelivered.push(message)));
      await waitFor("the redelivery", () => redelivered.length === 1);
      assert.equal(redelivered[0].id, "m-handover");
      assert.equal(redelivered[0].attempt, 1, "a redelivery is not a failed attempt");
      release(); // The cancelled handler finishes late; its ack must not disturb anything.
      await delay(quietPeriodMs);
      assert.equal(redelivered.length, 1);
      await second.cancel();
    },
  );

  test("keeps messages published before any consumer until one arrives", async (queue, newQueueName) => {
    const name = newQueueName("early");
    await queue.declare({ name });
    for (const body of ["a", "b", "c"]) await queue.publish(name, body);
    await delay(50);
    const received: string[] = [];
    const consumer = await queue.consume(name, (m) => Promise.resolve(void received.push(m.body)), { prefetch: 1 });
    await waitFor("three messages", () => received.length === 3);
    assert.deepEqual(received, ["a", "b", "c"], "one consumer with prefetch 1 sees publish order");
    await consumer.cancel();
  });

  test("rejects publishing to or consuming from a queue that was not declared", async (queue, newQueueName) => {
    const name = newQueueName("undeclared");
    await assert.rejects(queue.publish(name, "lost?"), /does not exist/);
    await assert.rejects(queue.consume(name, () => Promise.resolve()), /not declared/);
  });

  test("rejects invalid retry delays and prefetch values", async (queue, newQueueName) => {
    const name = newQueueName("invalid");
    await assert.rejects(queue.declare({ name, retryDelaysMs: [0] }), RangeError);
    await queue.declare({ name });
    await assert.rejects(queue.consume(name, () => Promise.resolve(), { prefetch: 0 }), RangeError);
  });

  test("ping() resolves against a healthy queue", async (queue) => {
    await queue.ping(2_000);
  });

  if (options.durable) durableContract(kind, makeQueue);
}

/** The restart test of a durable adapter: acknowledged work outlives the process that accepted it. */
function durableContract(kind: string, makeQueue: MakeQueue): void {
  Deno.test(
    `[${kind}] work queue delivers after a restart every message not acked: the unacked one at its attempt, ` +
      "the waiting retry at its due time",
    async () => {
      const { queue, newQueueName, cleanup, reopen } = await makeQueue();
      assert.ok(reopen, "a durable adapter's fixture offers reopen()");
      let release!: () => void;
      const handlerReleased = new Promise<void>((resolve) => release = resolve);
      try {
        const name = newQueueName("restart");
        const retryDelayMs = 800;
        await queue.declare({ name, retryDelaysMs: [retryDelayMs] });
        for (const id of ["m-acked", "m-retried", "m-in-flight"]) {
          await queue.publish(name, `body of ${id}`, { id, headers: { "x-trace": id } });
        }
        const handled = new Set<string>();
        let failedAtMs = 0;
        await queue.consume(name, async (message) => {
          handled.add(message.id);
          if (message.id === "m-retried") {
            failedAtMs = Date.now();
            throw new Error("partner down");
          }
          if (message.id === "m-in-flight") await handlerReleased; // Still running when the process stops.
        }, { prefetch: 3 });
        await waitFor("all three messages to be handled once", () => handled.size === 3);
        // Time for the ack and the retry's copy to be stored (RabbitMQ: confirmed, then the original acked).
        await delay(quietPeriodMs);
        await queue.close();

        const restarted = await reopen();
        await restarted.declare({ name, retryDelaysMs: [retryDelayMs] });
        const received: { message: QueueMessage; atMs: number }[] = [];
        await restarted.consume(name, (message) => Promise.resolve(void received.push({ message, atMs: Date.now() })));
        await waitFor("the retry", () => received.some((r) => r.message.id === "m-retried"), { timeoutMs: 10_000 });
        await delay(quietPeriodMs);
        assert.deepEqual(
          received.map((r) => r.message.id).sort(),
          ["m-in-flight", "m-retried"],
          "both unacked messages come back once; the acked one does not",
        );
        const inFlight = received.find((r) => r.message.id === "m-in-flight")!.message;
        assert.deepEqual(inFlight, {
          id: "m-in-flight",
          body: "body of m-in-flight",
          headers: { "x-trace": "m-in-flight" },
          attempt: 1,
        }, "a delivery cut short by the restart is not a failed attempt");
        const retried = received.find((r) => r.message.id === "m-retried")!;
        assert.equal(retried.message.attempt, 2);
        assert.equal(retried.message.headers["x-trace"], "m-retried");
        assert.match(retried.message.headers["x-bv-error"] ?? "", /partner down/);
        const waitedMs = retried.atMs - failedAtMs;
        assert.ok(waitedMs >= retryDelayMs - 10, `the retry came ${waitedMs} ms after the failure, not its due time`);
      } finally {
        release(); // The first process's handler ends late; its ack must change nothing.
        await cleanup();
      }
    },
  );
}
