import assert from "node:assert/strict";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { createInvalidationHub } from "./invalidation_hub.ts";

const decoder = new TextDecoder();

/** Reads from `response` until `done(text)` holds, bounded by `timeoutMs`; returns what was read. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  done: (text: string) => boolean,
  timeoutMs = 2_000,
): Promise<string> {
  let text = "";
  const deadline = Date.now() + timeoutMs;
  while (!done(text)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out; read so far: ${JSON.stringify(text)}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const chunk = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(`timed out: ${text}`)), left)),
    ]).finally(() => clearTimeout(timer));
    if (chunk.done) throw new Error(`stream ended; read: ${JSON.stringify(text)}`);
    text += decoder.decode(chunk.value);
  }
  return text;
}

Deno.test("publish() sends one purge frame per product, as the edge contract spells it", async () => {
  const hub = createInvalidationHub({ heartbeatMs: 60_000 });
  const abort = new AbortController();
  try {
    const response = hub.open(abort.signal);
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "no-store");
    const reader = response.body!.getReader();
    hub.publish("3f0c6c1e-0000-4000-8000-000000000001");
    hub.publish("p-2");
    const text = await readUntil(reader, (t) => t.includes("p-2"));
    assert.equal(
      text,
      ": connected\n\n" +
        'event: purge\ndata: {"productId":"3f0c6c1e-0000-4000-8000-000000000001"}\n\n' +
        'event: purge\ndata: {"productId":"p-2"}\n\n',
    );
    await reader.cancel();
  } finally {
    hub.close();
  }
});

Deno.test("publish() ignores product ids outside the contract (empty or over 200 characters)", async () => {
  const hub = createInvalidationHub({ heartbeatMs: 60_000 });
  try {
    const reader = hub.open(new AbortController().signal).body!.getReader();
    hub.publish("");
    hub.publish("x".repeat(201));
    hub.publish("y".repeat(200));
    const text = await readUntil(reader, (t) => t.includes("yyy"));
    assert.equal(text, `: connected\n\nevent: purge\ndata: {"productId":"${"y".repeat(200)}"}\n\n`);
    await reader.cancel();
  } finally {
    hub.close();
  }
});

Deno.test("an idle stream gets a heartbeat comment every heartbeatMs", async () => {
  const hub = createInvalidationHub({ heartbeatMs: 30 });
  try {
    const reader = hub.open(new AbortController().signal).body!.getReader();
    const started = performance.now();
    const text = await readUntil(reader, (t) => t.split(": heartbeat\n\n").length - 1 >= 3);
    const elapsedMs = performance.now() - started;
    assert.ok(elapsedMs >= 60, `three heartbeats 30 ms apart cannot come in ${elapsedMs} ms`);
    assert.ok(!text.includes("event:"), "a heartbeat is a comment, never an event");
    await reader.cancel();
  } finally {
    hub.close();
  }
});

Deno.test("a stream that stops reading is dropped past its queue bound; a reading one keeps its events", async () => {
  const hub = createInvalidationHub({ heartbeatMs: 60_000, subscriberQueueMax: 4 });
  try {
    const slow = hub.open(new AbortController().signal).body!.getReader();
    const fast = hub.open(new AbortController().signal).body!.getReader();
    const received: string[] = [];
    for (let i = 0; i < 10; i++) {
      hub.publish(`p-${i}`);
      received.push(await readUntil(fast, (t) => t.includes(`p-${i}"`)));
    }
    assert.equal(hub.subscribers(), 1, "only the reading stream is left");
    assert.match(received.join(""), /p-9/);
    // The dropped stream errors: its queued frames are discarded, not delivered late.
    await assert.rejects(() => slow.read(), /frames queued/);
    await fast.cancel();
  } finally {
    hub.close();
  }
});

Deno.test("a disconnect frees the stream: request signal abort or body cancel", async () => {
  const hub = createInvalidationHub({ heartbeatMs: 60_000 });
  try {
    const abort = new AbortController();
    hub.open(abort.signal);
    const cancelled = hub.open(new AbortController().signal);
    assert.equal(hub.subscribers(), 2);
    abort.abort();
    assert.equal(hub.subscribers(), 1);
    await cancelled.body!.cancel();
    assert.equal(hub.subscribers(), 0);
    hub.publish("p-after");
    const preAborted = new AbortController();
    preAborted.abort();
    hub.open(preAborted.signal);
    assert.equal(hub.subscribers(), 0, "a request already gone never holds a stream");
  } finally {
    hub.close();
  }
});

Deno.test("streams past subscribersMax are refused with 429 and Retry-After; close() ends the rest", async () => {
  const hub = createInvalidationHub({ heartbeatMs: 60_000, subscribersMax: 2 });
  const first = hub.open(new AbortController().signal).body!.getReader();
  hub.open(new AbortController().signal);
  assert.throws(
    () => hub.open(new AbortController().signal),
    (error) => error instanceof ProblemError && error.status === 429 && error.headers?.["retry-after"] === "5",
  );
  hub.close();
  assert.equal(hub.subscribers(), 0);
  assert.equal(await readUntil(first, (t) => t.length > 0), ": connected\n\n");
  assert.equal((await first.read()).done, true, "close() ends open streams");
  assert.throws(() => hub.open(new AbortController().signal), (e) => e instanceof ProblemError && e.status === 503);
});

Deno.test("the server's shutdown signal ends every stream after a last comment and refuses new ones with 503", async () => {
  const hub = createInvalidationHub({ heartbeatMs: 60_000 });
  const shutdown = new AbortController();
  // The signal outlives every stream: one that ended must not leave its listener behind.
  let listeners = 0;
  const { addEventListener, removeEventListener } = shutdown.signal;
  shutdown.signal.addEventListener = (...args: Parameters<typeof addEventListener>) => {
    listeners++;
    addEventListener.apply(shutdown.signal, args);
  };
  shutdown.signal.removeEventListener = (...args: Parameters<typeof removeEventListener>) => {
    listeners--;
    removeEventListener.apply(shutdown.signal, args);
  };
  try {
    const first = hub.open(new AbortController().signal, shutdown.signal).body!.getReader();
    const second = hub.open(new AbortController().signal, shutdown.signal).body!.getReader();
    const left = new AbortController();
    hub.open(left.signal, shutdown.signal);
    const cancelled = hub.open(new AbortController().signal, shutdown.signal);
    assert.equal(listeners, 4);
    left.abort();
    await cancelled.body!.cancel();
    assert.equal(listeners, 2, "streams that ended first detached themselves");

    hub.publish("p-1");
    shutdown.abort();
    assert.equal(hub.subscribers(), 0);
    for (const reader of [first, second]) {
      const text = await readUntil(reader, (t) => t.includes("shutting down"));
      assert.equal(text, ': connected\n\nevent: purge\ndata: {"productId":"p-1"}\n\n: shutting down; reconnect\n\n');
      assert.equal((await reader.read()).done, true, "the stream ends, so the server can drain");
    }
    assert.throws(
      () => hub.open(new AbortController().signal, shutdown.signal),
      (error) => error instanceof ProblemError && error.status === 503,
    );
  } finally {
    hub.close();
  }
});

Deno.test("createInvalidationHub() refuses a bound that is not a positive integer", () => {
  assert.throws(() => createInvalidationHub({ heartbeatMs: 0 }), RangeError);
  assert.throws(() => createInvalidationHub({ subscriberQueueMax: 1.5 }), RangeError);
});
