import assert from "node:assert/strict";
import { workQueueContract } from "../../ports/contract/work_queue_contract.ts";
import { createTestVhost } from "../../testing/rabbit_vhost.ts";
import { uniqueName } from "../../testing/unique.ts";
import { createAmqpWorkQueue } from "./mod.ts";

// One vhost for the whole file (rabbitmqctl is slow); every test uses its own queue names inside it.
const vhost = await createTestVhost();

workQueueContract("amqp", () => {
  const open = () => createAmqpWorkQueue({ url: vhost.url, connectTimeoutMs: 5_000, publishTimeoutMs: 5_000 });
  const made = [open()];
  return Promise.resolve({
    queue: made[0],
    newQueueName: (name) => uniqueName(name),
    // A restarted process: a new connection to the same broker and vhost.
    reopen: () => Promise.resolve(made[made.push(open()) - 1]),
    cleanup: async () => {
      for (const queue of made) await queue.close();
    },
  });
}, { durable: true });

Deno.test("[amqp] work queue declares the retry topology: one TTL queue per distinct delay", async () => {
  const queue = createAmqpWorkQueue({ url: vhost.url });
  const name = uniqueName("topology");
  try {
    await queue.declare({ name, retryDelaysMs: [100, 100, 250] });
    const { rabbitmqctl } = await import("../../testing/rabbit_vhost.ts");
    const listed = await rabbitmqctl("list_queues", "-p", vhost.name, "--no-table-headers", "name", "arguments");
    const ours = listed.split("\n").filter((line) => line.startsWith(name)).map((line) => line.split("\t")[0]);
    assert.deepEqual(ours.sort(), [name, `${name}.dlq`, `${name}.retry-q.100`, `${name}.retry-q.250`].sort());
    const retryLine = listed.split("\n").find((line) => line.startsWith(`${name}.retry-q.250\t`)) ?? "";
    assert.match(retryLine, /x-message-ttl/);
    assert.match(retryLine, /250/);
    assert.match(retryLine, new RegExp(`x-dead-letter-routing-key.*${name}`));
    assert.match(retryLine, /x-dead-letter-strategy.*at-least-once/);
    assert.match(retryLine, /x-queue-type.*quorum/);
  } finally {
    await queue.close();
  }
});

Deno.test("[amqp] work queue publish() rejects within publishTimeoutMs when the broker is unreachable", async () => {
  const queue = createAmqpWorkQueue({ url: "amqp://guest:guest@127.0.0.1:1", publishTimeoutMs: 300 });
  try {
    const startedMs = Date.now();
    await assert.rejects(queue.publish("anything", "x"), /not confirmed within 300 ms/);
    assert.ok(Date.now() - startedMs < 1_500);
    await assert.rejects(queue.ping(200), /not connected/);
  } finally {
    await queue.close();
  }
});

Deno.test("[amqp] a failed message whose dead-letter copy cannot be stored stays unacked and is moved later, its handler run once", async () => {
  const queue = createAmqpWorkQueue({ url: vhost.url, publishTimeoutMs: 2_000 });
  const name = uniqueName("move_later");
  const { rabbitmqctl } = await import("../../testing/rabbit_vhost.ts");
  try {
    await queue.declare({ name, retryDelaysMs: [] });
    // The DLQ is gone (deleted by an operator, say): the copy is unroutable until the queue exists again.
    await rabbitmqctl("delete_queue", "-p", vhost.name, `${name}.dlq`);
    let runs = 0;
    const consumer = await queue.consume(name, () => {
      runs++;
      return Promise.reject(new Error("handler failed"));
    });
    await queue.publish(name, "payload", { id: "m-1" });
    // Tries at 0, +1 s, +2 s, +4 s: let two of them fail with the DLQ missing.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.equal(runs, 1, "the handler is not run again while only the move fails");
    await queue.declare({ name: `${name}.dlq` }); // The DLQ exists again.
    const dead: string[] = [];
    const reader = await queue.consume(`${name}.dlq`, (message) => Promise.resolve(void dead.push(message.body)));
    const deadline = Date.now() + 10_000;
    while (dead.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(dead, ["payload"], "moved once the queue existed again");
    assert.equal(runs, 1);
    await reader.cancel();
    await consumer.cancel();
  } finally {
    await queue.close();
  }
});

// Deno.test has no "after all": registered last, this runs after the tests above (files run in order).
Deno.test("[amqp] drop the test vhost", async () => {
  await vhost.drop();
});
