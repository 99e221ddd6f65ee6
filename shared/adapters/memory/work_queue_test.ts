import assert from "node:assert/strict";
import { workQueueContract } from "../../ports/contract/work_queue_contract.ts";
import { createMemoryWorkQueue } from "./work_queue.ts";

workQueueContract("memory", () => {
  const queue = createMemoryWorkQueue();
  let counter = 0;
  return Promise.resolve({ queue, newQueueName: (name) => `${name}.${++counter}`, cleanup: () => queue.close() });
});

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
