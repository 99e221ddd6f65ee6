import assert from "node:assert/strict";
import { workQueueContract } from "../../ports/contract/work_queue_contract.ts";
import { createMemoryWorkQueue } from "./work_queue.ts";

workQueueContract("memory", () => {
  const queue = createMemoryWorkQueue();
  let counter = 0;
  return Promise.resolve({ queue, newQueueName: (name) => `${name}.${++counter}`, cleanup: () => queue.close() });
});

// The same contract with a journal, as the platform runs it: every behaviour above holds, and restarts too.
workQueueContract("memory, journaled", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "bv_work_queue_contract_" });
  const made = [createMemoryWorkQueue({ dataDir })];
  let counter = 0;
  return {
    queue: made[0],
    newQueueName: (name) => `${name}.${++counter}`,
    reopen: () => Promise.resolve(made[made.push(createMemoryWorkQueue({ dataDir })) - 1]),
    cleanup: async () => {
      for (const queue of made) await queue.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}, { durable: true });

Deno.test("[memory] work queue rejects publish() once a queue holds maxQueueLength messages", async () => {
  const queue = createMemoryWorkQueue({ maxQueueLength: 2 });
  try {
    await queue.declare({ name: "small" });
    await queue.publish("small", "1");
    await queue.publish("small", "2");
    await assert.rejects(queue.publish("small", "3"), /Queue "small" is full \(2 messages waiting\)/);
  } finally {
    await queue.close();
  }
});

Deno.test("[memory] work queue rejects every call once closed, and close() drops pending retries", async () => {
  const queue = createMemoryWorkQueue();
  await queue.declare({ name: "q", retryDelaysMs: [60_000] });
  await queue.consume("q", () => Promise.reject(new Error("fails")));
  await queue.publish("q", "m");
  await new Promise((resolve) => setTimeout(resolve, 10));
  await queue.close(); // A 60 s retry timer is pending; the test's timer sanitizer fails if it leaks.
  await assert.rejects(queue.publish("q", "m"), /Work queue is closed/);
  await assert.rejects(queue.ping(100), /Work queue is closed/);
});

Deno.test("[memory] work queue refuses publish() while the queue's DLQ is full, and accepts again once drained", async () => {
  const queue = createMemoryWorkQueue({ maxQueueLength: 2 });
  const until = async (what: string, condition: () => boolean) => {
    const deadline = Date.now() + 2_000;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  try {
    await queue.declare({ name: "jobs" });
    const attempts: string[] = [];
    await queue.consume("jobs", (message) => {
      attempts.push(message.body);
      return Promise.reject(new Error("always fails"));
    });
    await queue.publish("jobs", "m0");
    await queue.publish("jobs", "m1");
    await until("both messages to be dead-lettered", () => attempts.length >= 2);
    await new Promise((resolve) => setTimeout(resolve, 10));
    await assert.rejects(queue.publish("jobs", "m2"), /dead-letter queue "jobs.dlq" is full \(2 messages\)/);

    await queue.declare({ name: "jobs.dlq" });
    const dead: string[] = [];
    await queue.consume("jobs.dlq", (message) => {
      dead.push(message.body);
      return Promise.resolve();
    });
    await until("the dead letters to be consumed", () => dead.length >= 2);
    assert.deepEqual(dead, ["m0", "m1"], "no dead letter was dropped");
    await queue.publish("jobs", "m2");
    await until("the new message", () => attempts.length >= 3);
    assert.equal(attempts[2], "m2");
  } finally {
    await queue.close();
  }
});
