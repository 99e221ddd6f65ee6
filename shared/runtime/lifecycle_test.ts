/**
 * The lifecycle on real sockets: long-lived responses end on the shutdown signal (or are ended by the
 * closers, which always run), readiness is red while the drain delay keeps the listener open, and every
 * part of a stop is bounded by the grace period. The signal handlers and exit codes are in
 * `lifecycle_process_test.ts`.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { createLifecycle } from "./lifecycle.ts";
import { createServiceApp, shutdownSignalOf } from "./service_app.ts";
import { readToEnd } from "../testing/read_to_end.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An app with `/sse`: a stream that stays open; with `endsOnShutdown` it says goodbye and ends on the signal. */
function streamingApp(options: { readonly endsOnShutdown: boolean }): {
  app: Hono;
  /** Ends the open streams, as a hub's `close()` would. */
  endStreams(): void;
} {
  const app = createServiceApp({ name: "test-east", checks: {} });
  const open = new Set<ReadableStreamDefaultController<Uint8Array>>();
  app.get("/sse", (c) => {
    const shutdown = shutdownSignalOf(c);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(": connected\n\n"));
        open.add(controller);
        if (!options.endsOnShutdown) return;
        shutdown.addEventListener("abort", () => {
          controller.enqueue(encoder.encode(": shutting down\n\n"));
          controller.close();
          open.delete(controller);
        }, { once: true });
      },
      cancel: () => open.clear(),
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  return {
    app,
    endStreams() {
      for (const controller of open) controller.close();
      open.clear();
    },
  };
}

/** Opens `url` as a stream and reads its first frame; `rest()` reads to the end (bounded). */
async function openStream(url: string): Promise<{ first: string; rest(): Promise<string> }> {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const first = decoder.decode((await reader.read()).value);
  return { first, rest: () => readToEnd(reader) };
}

Deno.test("stop() ends a stream that follows the shutdown signal before the server drains, then runs every closer", async () => {
  const lifecycle = createLifecycle({ graceMs: 4_000, handleSignals: false });
  const { app } = streamingApp({ endsOnShutdown: true });
  const closed: string[] = [];
  lifecycle.onStop("first registered", () => Promise.resolve(void closed.push("first registered")));
  lifecycle.onStop("last registered", () => Promise.resolve(void closed.push("last registered")));
  const { port } = lifecycle.serve(app, { port: 0, hostname: "127.0.0.1", name: "test-east" });
  const stream = await openStream(`http://127.0.0.1:${port}/sse`);
  assert.equal(stream.first, ": connected\n\n");

  const started = performance.now();
  const outcome = await lifecycle.stop("test");
  const elapsedMs = performance.now() - started;
  assert.deepEqual(closed, ["last registered", "first registered"], "closers run in reverse order");
  assert.equal(await stream.rest(), ": shutting down\n\n", "the client reads the goodbye, then the end");
  assert.deepEqual(outcome, {
    completed: true,
    serversDrained: true,
    closed: ["last registered", "first registered"],
    failed: [],
    timedOut: [],
    skipped: [],
  });
  assert.ok(elapsedMs < 2_000, `the stream did not hold the drain up, yet stop() took ${elapsedMs} ms`);
});

Deno.test("an open response that ignores the shutdown signal holds the drain for half the grace at most; the closers run anyway", async () => {
  const graceMs = 1_500;
  const lifecycle = createLifecycle({ graceMs, handleSignals: false });
  const { app, endStreams } = streamingApp({ endsOnShutdown: false });
  let closerRan = false;
  // As e-commerce's consumers closer ends its hubs' streams.
  lifecycle.onStop("hub", () => {
    closerRan = true;
    endStreams();
    return Promise.resolve();
  });
  const { port } = lifecycle.serve(app, { port: 0, hostname: "127.0.0.1", name: "test-east" });
  const stream = await openStream(`http://127.0.0.1:${port}/sse`);

  const started = performance.now();
  const outcome = await lifecycle.stop("test");
  const elapsedMs = performance.now() - started;
  assert.equal(closerRan, true, "the closer ran although a response was still open");
  assert.equal(await stream.rest(), "", "the client sees its stream end");
  assert.ok(elapsedMs < graceMs, `stop() took ${elapsedMs} ms, the whole grace period`);
  assert.deepEqual(outcome.closed, ["hub"]);
  assert.equal(outcome.serversDrained, true, "once the closer ended the stream, the server finished draining");
  assert.equal(outcome.completed, true);
});

Deno.test("readiness answers 503 during the drain delay while the listener still accepts; then the server stops", async () => {
  const lifecycle = createLifecycle({ graceMs: 60_000, drainDelayMs: 30_000, handleSignals: false });
  const app = createServiceApp({ name: "test-east", checks: {} });
  const { port } = lifecycle.serve(app, { port: 0, hostname: "127.0.0.1", name: "test-east" });
  const url = `http://127.0.0.1:${port}`;
  const before = await fetch(`${url}/readyz`);
  assert.equal(before.status, 200);
  await before.body?.cancel();

  const started = performance.now();
  const stopping = lifecycle.stop("SIGTERM");
  const ready = await fetch(`${url}/readyz`);
  assert.equal(ready.status, 503, "a prober sees the process leave");
  assert.equal((await ready.json()).draining, true);
  const alive = await fetch(`${url}/healthz`);
  assert.equal(alive.status, 200, "new connections are still served while the edge catches up");
  await alive.body?.cancel();

  // A second stop (a second signal) cuts the delay short instead of waiting 30 s.
  const outcome = await lifecycle.stop("SIGINT", { skipDrainDelay: true });
  assert.equal(await stopping, outcome);
  assert.ok(performance.now() - started < 10_000, "the second stop hurried the first");
  assert.equal(outcome.completed, true);
  await assert.rejects(() => fetch(`${url}/healthz`), TypeError, "the listener is closed once the stop is done");
});

Deno.test("the drain delay is capped at half the grace period, and skipped when nothing is served", async () => {
  const served = createLifecycle({ graceMs: 400, drainDelayMs: 60_000, handleSignals: false });
  served.serve(createServiceApp({ name: "test-east", checks: {} }), { port: 0, hostname: "127.0.0.1", name: "t" });
  let started = performance.now();
  assert.equal((await served.stop("test")).completed, true);
  const cappedMs = performance.now() - started;
  assert.ok(cappedMs >= 190 && cappedMs < 400, `a 400 ms grace waits 200 ms of delay, not ${cappedMs} ms`);

  const worker = createLifecycle({ graceMs: 60_000, drainDelayMs: 30_000, handleSignals: false });
  started = performance.now();
  assert.equal((await worker.stop("test")).completed, true);
  assert.ok(performance.now() - started < 1_000, "no server, no prober to wait for");
});

Deno.test("a closer that outlives the grace period is reported, those after it are skipped, and stop() keeps the bound", async () => {
  const graceMs = 400;
  const lifecycle = createLifecycle({ graceMs, handleSignals: false });
  let lastRan = false;
  lifecycle.onStop("pool", () => Promise.resolve(void (lastRan = true)));
  lifecycle.onStop("consumer that never leaves", () => new Promise(() => {}));
  lifecycle.onStop("producer", () => Promise.reject(new Error("broker gone")));
  const started = performance.now();
  const outcome = await lifecycle.stop("test");
  const elapsedMs = performance.now() - started;
  assert.deepEqual(outcome, {
    completed: false,
    serversDrained: true,
    closed: [],
    failed: ["producer"],
    timedOut: ["consumer that never leaves"],
    skipped: ["pool"],
  });
  assert.equal(lastRan, false);
  assert.ok(elapsedMs >= graceMs - 10 && elapsedMs < graceMs + 300, `stop() took ${elapsedMs} ms`);
  await lifecycle.stopped;
});

Deno.test("a closer's reserved time survives a closer before it that hangs: the pool still closes", async () => {
  const graceMs = 600;
  const lifecycle = createLifecycle({ graceMs, handleSignals: false });
  let poolClosed = false;
  lifecycle.onStop("pool", () => Promise.resolve(void (poolClosed = true)), { reserveMs: 200 });
  lifecycle.onStop("consumer that never leaves", () => new Promise(() => {}));
  const started = performance.now();
  const outcome = await lifecycle.stop("test");
  const elapsedMs = performance.now() - started;
  assert.deepEqual(outcome, {
    completed: false,
    serversDrained: true,
    closed: ["pool"],
    failed: [],
    timedOut: ["consumer that never leaves"],
    skipped: [],
  });
  assert.equal(poolClosed, true);
  assert.ok(elapsedMs < graceMs + 300, `stop() took ${elapsedMs} ms`);
  assert.throws(() => lifecycle.onStop("bad", () => Promise.resolve(), { reserveMs: -1 }), RangeError);
});

Deno.test("createLifecycle() refuses a grace period or drain delay that is not a whole number of ms", () => {
  assert.throws(() => createLifecycle({ graceMs: 0, handleSignals: false }), RangeError);
  assert.throws(() => createLifecycle({ graceMs: 1_000, drainDelayMs: -1, handleSignals: false }), RangeError);
  assert.throws(() => createLifecycle({ graceMs: 1_000, drainDelayMs: 1.5, handleSignals: false }), RangeError);
});

Deno.test("shuttingDown aborts before the drain, so a plain app's endless stream ends and the drain completes", async () => {
  const graceMs = 3_000;
  const lifecycle = createLifecycle({ graceMs, handleSignals: false });
  const events: string[] = [];
  const app = new Hono();
  // Not a service app (the edge is not): its stream follows the lifecycle's signal, as edge/main.ts wires it.
  app.get("/stream", () => {
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(": open\n\n"));
        lifecycle.shuttingDown.addEventListener("abort", () => {
          events.push("stream ended");
          controller.close();
        }, { once: true });
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  lifecycle.onStop("closer", () => Promise.resolve(void events.push("closer ran")));
  const { port } = lifecycle.serve(app, { port: 0, hostname: "127.0.0.1", name: "plain" });
  const response = await fetch(`http://127.0.0.1:${port}/stream`);
  const reader = response.body!.getReader();
  await reader.read();
  assert.equal(lifecycle.shuttingDown.aborted, false);
  const started = performance.now();
  const outcome = await lifecycle.stop("test");
  const elapsedMs = performance.now() - started;
  assert.equal(outcome.serversDrained, true);
  assert.equal(outcome.completed, true);
  assert.deepEqual(events, ["stream ended", "closer ran"]);
  assert.ok(elapsedMs < graceMs / 2, `stop() took ${elapsedMs} ms: the drain waited on the stream`);
  // The client saw the stream's end, not a cut connection.
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read());
});
