import assert from "node:assert/strict";
import { createMemoryEventLog, createMemoryWorkQueue } from "../adapters/memory/mod.ts";
import { currentTraceContext, newTraceContext, withTraceContext } from "./trace_context.ts";
import { tracedEventLog, tracedWorkQueue } from "./traced_ports.ts";

async function waitFor(predicate: () => boolean, timeoutMs = 3_000): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("a trace started by a request continues in the event-log consumer", async () => {
  const log = tracedEventLog(createMemoryEventLog());
  const origin = newTraceContext("corr-7");
  let seen: { traceId?: string; correlationId?: string } | undefined;
  const sub = await log.subscribe({
    groupId: "g",
    topics: ["a.b.c.d.v1"],
    from: "earliest",
    handler: () => {
      const context = currentTraceContext();
      seen = { traceId: context?.traceId, correlationId: context?.correlationId };
      return Promise.resolve();
    },
  });
  try {
    await withTraceContext(origin, () => log.publish("a.b.c.d.v1", [{ key: "k", value: "v" }]));
    await waitFor(() => seen !== undefined);
    assert.deepEqual(seen, { traceId: origin.traceId, correlationId: "corr-7" });
  } finally {
    await sub.close();
    await log.close();
  }
});

Deno.test("a trace continues through the work queue; explicit headers win", async () => {
  const queue = tracedWorkQueue(createMemoryWorkQueue());
  await queue.declare({ name: "q" });
  const origin = newTraceContext();
  const seen: { traceId?: string; header?: string }[] = [];
  const consumer = await queue.consume("q", (message) => {
    seen.push({ traceId: currentTraceContext()?.traceId, header: message.headers["x-custom"] });
    return Promise.resolve();
  });
  try {
    await withTraceContext(origin, () => queue.publish("q", "body", { headers: { "x-custom": "1" } }));
    await waitFor(() => seen.length === 1);
    assert.deepEqual(seen[0], { traceId: origin.traceId, header: "1" });
  } finally {
    await consumer.cancel();
    await queue.close();
  }
});
