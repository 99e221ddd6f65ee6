/**
 * The embedded work queue with `dataDir`: what it accepted outlives the process, as RabbitMQ's durable queues
 * and persistent messages do. A crash is simulated by copying the data directory while the first instance
 * still runs (the files a killed process leaves), so nothing its close() might do can help.
 */
import assert from "node:assert/strict";
import type { QueueMessage, WorkQueue } from "../../ports/work_queue.ts";
import { delay, waitFor } from "../../ports/contract/_wait_for.ts";
import type { FileIo } from "./_jsonl_file.ts";
import { createMemoryWorkQueue, type MemoryWorkQueueOptions } from "./work_queue.ts";

const journalOf = (dataDir: string) => `${dataDir}/journal.jsonl`;

/** Runs `test` with a fresh data directory and a way to open queues on it, all closed and removed after. */
async function withQueues(
  test: (open: (options?: MemoryWorkQueueOptions) => WorkQueue, dataDir: string) => Promise<void>,
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "bv_work_queue_persistence_" });
  const opened: WorkQueue[] = [];
  try {
    await test((options) => {
      const queue = createMemoryWorkQueue({ dataDir, ...options });
      opened.push(queue);
      return queue;
    }, dataDir);
  } finally {
    for (const queue of opened) await queue.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

/** The files a process killed right now would leave: a copy of its data directory. */
async function crashCopyOf(dataDir: string, into: string): Promise<void> {
  await Deno.mkdir(into, { recursive: true });
  for await (const entry of Deno.readDir(dataDir)) {
    if (entry.isFile) await Deno.copyFile(`${dataDir}/${entry.name}`, `${into}/${entry.name}`);
  }
}

async function journalText(dataDir: string): Promise<string> {
  return await Deno.readTextFile(journalOf(dataDir));
}

/** Consumes `queue` on `workQueue`, recording each delivery and when it came. */
async function record(workQueue: WorkQueue, queue: string) {
  const received: { message: QueueMessage; atMs: number }[] = [];
  await workQueue.consume(queue, (message) => Promise.resolve(void received.push({ message, atMs: Date.now() })));
  return received;
}

/** Real file io that throws on the next write after writing `failAfterBytes` of it, while armed. */
function flakyIo() {
  const state = { failAfterBytes: undefined as number | undefined };
  const io: FileIo = {
    async write(file, bytes) {
      if (state.failAfterBytes === undefined) return await file.write(bytes);
      await file.write(bytes.subarray(0, state.failAfterBytes));
      state.failAfterBytes = undefined;
      throw new Deno.errors.WriteZero("No space left on device (os error 28)");
    },
    truncate: (file, size) => file.truncate(size),
  };
  return { io, state };
}

Deno.test("[memory] journaled work queue delivers after a crash every message not acked: the one in flight at attempt 1, the waiting retry at its due time as attempt 2", async () => {
  await withQueues(async (open, dataDir) => {
    const retryDelayMs = 500;
    const first = open();
    await first.declare({ name: "deliveries", retryDelaysMs: [retryDelayMs] });
    for (const id of ["m-acked", "m-retried", "m-in-flight"]) await first.publish("deliveries", id, { id });
    let failedAtMs = 0;
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    const handled = new Set<string>();
    await first.consume("deliveries", async (message) => {
      handled.add(message.id);
      if (message.id === "m-retried") {
        failedAtMs = Date.now();
        throw new Error("partner answered 503");
      }
      if (message.id === "m-in-flight") await released; // Never settles before the crash.
    }, { prefetch: 3 });
    await waitFor("each message handled once", () => handled.size === 3);
    // The ack and the retry are journaled without making the handler wait: crash once both are on disk.
    await waitFor("the ack and the retry on disk", async () => {
      const text = await journalText(dataDir);
      return text.includes('{"x":') && text.includes('"a":2');
    });
    const crashed = `${dataDir}/after_crash`;
    await crashCopyOf(dataDir, crashed);
    await first.close();
    release();

    const restarted = open({ dataDir: crashed });
    const openedAtMs = Date.now();
    await restarted.declare({ name: "deliveries", retryDelaysMs: [retryDelayMs] });
    const received = await record(restarted, "deliveries");
    await waitFor("the retry", () => received.length === 2, { timeoutMs: 3_000 });
    await delay(300);
    assert.deepEqual(received.map((r) => [r.message.id, r.message.attempt]), [["m-in-flight", 1], ["m-retried", 2]]);
    assert.ok(received[0].atMs - openedAtMs < 200, "the message in flight at the crash is ready at once");
    const retried = received[1];
    assert.ok(retried.atMs >= failedAtMs + retryDelayMs - 2, `retry ${retried.atMs - failedAtMs} ms after the failure`);
    assert.match(retried.message.headers["x-bv-error"], /partner answered 503/);
  });
});

Deno.test("[memory] journaled work queue close() acks nothing: the next instance delivers what was in flight, and its queues exist", async () => {
  await withQueues(async (open) => {
    const first = open();
    await first.declare({ name: "jobs" });
    await first.publish("jobs", "first", { id: "m-1" });
    let started!: () => void;
    const handlerStarted = new Promise<void>((resolve) => started = resolve);
    await first.consume("jobs", () => {
      started();
      return new Promise<void>(() => {}); // Still running at close().
    });
    await handlerStarted;
    await first.close();

    const second = open();
    // A durable queue exists after a restart: publishers need not wait for a consumer to declare it.
    await second.publish("jobs", "second", { id: "m-2" });
    await assert.rejects(second.consume("jobs", () => Promise.resolve()), /not declared by this work queue/);
    await second.declare({ name: "jobs" });
    const received = await record(second, "jobs");
    await waitFor("both messages", () => received.length === 2);
    assert.deepEqual(received.map((r) => [r.message.id, r.message.attempt]), [["m-1", 1], ["m-2", 1]]);
  });
});

Deno.test("[memory] journaled work queue delivers at once a retry that fell due while the process was down", async () => {
  await withQueues(async (open, dataDir) => {
    const first = open();
    await first.declare({ name: "jobs", retryDelaysMs: [60_000] });
    let failures = 0;
    await first.consume("jobs", () => Promise.reject(new Error(`failure ${++failures}`)));
    await first.publish("jobs", "x", { id: "m-late" });
    await waitFor("the retry on disk", async () => failures === 1 && (await journalText(dataDir)).includes('"a":2'));
    await first.close();

    const second = open({ now: () => Date.now() + 61_000 }); // Down for over a minute.
    await second.declare({ name: "jobs", retryDelaysMs: [60_000] });
    const received = await record(second, "jobs");
    await waitFor("the overdue retry", () => received.length === 1, { timeoutMs: 500 });
    assert.equal(received[0].message.attempt, 2);
    assert.match(received[0].message.headers["x-bv-error"], /failure 1/);
  });
});

Deno.test("[memory] journaled work queue keeps dead letters across a restart", async () => {
  await withQueues(async (open, dataDir) => {
    const first = open();
    await first.declare({ name: "jobs" });
    await first.consume("jobs", () => Promise.reject(new Error("poison")));
    await first.publish("jobs", "payload", { id: "m-dead", headers: { "x-trace": "t-1" } });
    await waitFor("the move to the DLQ on disk", async () => (await journalText(dataDir)).includes('"q":"jobs.dlq"'));
    await first.close();

    const second = open();
    await second.declare({ name: "jobs" });
    await second.declare({ name: "jobs.dlq" });
    const work = await record(second, "jobs");
    const dead = await record(second, "jobs.dlq");
    await waitFor("the dead letter", () => dead.length === 1);
    await delay(100);
    assert.deepEqual(work, [], "a dead letter is not retried");
    assert.equal(dead[0].message.id, "m-dead");
    assert.equal(dead[0].message.body, "payload");
    assert.equal(dead[0].message.headers["x-trace"], "t-1");
    assert.equal(dead[0].message.headers["x-bv-attempts"], "1");
    assert.match(dead[0].message.headers["x-bv-error"], /poison/);
  });
});

Deno.test("[memory] journaled work queue cuts a torn last line on open and appends cleanly after it", async () => {
  await withQueues(async (open, dataDir) => {
    const first = open();
    await first.declare({ name: "jobs" });
    await first.publish("jobs", "kept", { id: "m-1" });
    await first.close();
    // A crash in the middle of an append: never acknowledged, so never published.
    await Deno.writeTextFile(journalOf(dataDir), '{"n":2,"q":"jobs","i":"m-torn","b":"hal', { append: true });

    const second = open();
    await second.publish("jobs", "after", { id: "m-2" });
    await second.close();
    const lines = (await journalText(dataDir)).split("\n").filter((line) => line !== "");
    for (const line of lines) JSON.parse(line); // The new line was not glued to the torn one.
    assert.ok(!lines.some((line) => line.includes("m-torn")));

    const third = open();
    await third.declare({ name: "jobs" });
    const received = await record(third, "jobs");
    await waitFor("both messages", () => received.length === 2);
    assert.deepEqual(received.map((r) => r.message.id), ["m-1", "m-2"]);
  });
});

Deno.test("[memory] journaled work queue compacts its journal once acked messages dominate, keeping the live ones", async () => {
  await withQueues(async (open, dataDir) => {
    const first = open();
    await first.declare({ name: "work" });
    await first.declare({ name: "parked" });
    await first.declare({ name: "retrying", retryDelaysMs: [60_000] });
    await first.publish("parked", "p1", { id: "m-parked-1" });
    await first.publish("retrying", "r", { id: "m-retrying" });
    let failures = 0;
    await first.consume("retrying", () => Promise.reject(new Error(`failure ${++failures}`)));
    let acked = 0;
    await first.consume("work", () => Promise.resolve(void acked++));
    const published = 1_500;
    for (let i = 0; i < published; i++) await first.publish("work", `job ${i}`);
    await waitFor("every job acked", () => acked === published && failures === 1);
    await first.publish("parked", "p2", { id: "m-parked-2" });
    await first.close();

    // 3 queues, 3 live messages, and one put and one ack line for each of 1,500 jobs, but compacted.
    const lines = (await journalText(dataDir)).split("\n").filter((line) => line !== "");
    assert.ok(lines.length < 1_100, `${lines.length} lines after ${2 * published} for acked jobs`);
    const leftovers = [];
    for await (const entry of Deno.readDir(dataDir)) leftovers.push(entry.name);
    assert.deepEqual(leftovers, ["journal.jsonl"], "no temp file left");

    const second = open({ now: () => Date.now() + 61_000 });
    for (const name of ["work", "parked"]) await second.declare({ name });
    await second.declare({ name: "retrying", retryDelaysMs: [60_000] });
    const work = await record(second, "work");
    const parked = await record(second, "parked");
    const retrying = await record(second, "retrying");
    await waitFor("the live messages", () => parked.length === 2 && retrying.length === 1);
    await delay(100);
    assert.deepEqual(work, [], "acked jobs stay acked");
    assert.deepEqual(parked.map((r) => r.message.id), ["m-parked-1", "m-parked-2"]);
    assert.deepEqual([retrying[0].message.id, retrying[0].message.attempt], ["m-retrying", 2]);
  });
});

Deno.test("[memory] journaled work queue rejects publish() when the journal append fails, leaving no partial line", async () => {
  await withQueues(async (open, dataDir) => {
    const { io, state } = flakyIo();
    const first = open({ fileIo: io, maxQueueLength: 2 });
    await first.declare({ name: "jobs" });
    state.failAfterBytes = 20;
    await assert.rejects(first.publish("jobs", "lost", { id: "m-lost" }), /No space left on device/);
    await first.publish("jobs", "kept", { id: "m-kept" });
    await first.publish("jobs", "kept too", { id: "m-kept-2" }); // The failed publish holds no room.
    await first.close();
    const text = await journalText(dataDir);
    for (const line of text.trimEnd().split("\n")) JSON.parse(line);
    assert.ok(!text.includes("m-lost"));

    const second = open();
    await second.declare({ name: "jobs" });
    const received = await record(second, "jobs");
    await waitFor("the accepted messages", () => received.length === 2);
    await delay(100);
    assert.deepEqual(received.map((r) => r.message.id), ["m-kept", "m-kept-2"]);
  });
});

Deno.test("[memory] journaled work queue warns when an ack cannot be journaled, and delivers the message again after a restart", async () => {
  await withQueues(async (open) => {
    const { io, state } = flakyIo();
    const warnings: { message: string; fields: Record<string, unknown> }[] = [];
    const first = open({ fileIo: io, warn: (message, fields) => warnings.push({ message, fields }) });
    await first.declare({ name: "jobs" });
    await first.publish("jobs", "x", { id: "m-1" });
    state.failAfterBytes = 0;
    let handled = 0;
    await first.consume("jobs", () => Promise.resolve(void handled++));
    await waitFor("the warning", () => warnings.length === 1);
    assert.equal(handled, 1);
    assert.match(warnings[0].message, /Cannot journal an ack; after a restart the message is delivered again/);
    assert.equal(warnings[0].fields.messageId, "m-1");
    await first.close();

    const second = open();
    await second.declare({ name: "jobs" });
    const received = await record(second, "jobs");
    await waitFor("the redelivery", () => received.length === 1);
    assert.equal(received[0].message.id, "m-1");
  });
});

Deno.test("[memory] journaled work queue refuses to open a journal with a corrupt line, naming file and line", async () => {
  await withQueues(async (open, dataDir) => {
    await Deno.writeTextFile(journalOf(dataDir), '{"d":"jobs"}\nnot json\n{"d":"other"}\n');
    const queue = open();
    await assert.rejects(queue.ping(1_000), /Corrupt line 2 in ".*journal\.jsonl"/);
    await assert.rejects(queue.publish("jobs", "x"), /Corrupt line 2/);
  });
});
