import assert from "node:assert/strict";
import { createRedelivery, type Redelivery } from "./redelivery.ts";

const DELAY_MS_MIN = 5;
const DELAY_MS_MAX = 20;

/** A redelivery over a fake connection that records what it was told; `drops` counts dropped connections. */
function fixture(delayMsMin = DELAY_MS_MIN) {
  const scheduled: number[] = [];
  let drops = 0;
  let connected = true;
  const redelivery: Redelivery = createRedelivery({
    delayMsMin,
    delayMsMax: Math.max(delayMsMin, DELAY_MS_MAX),
    isConnected: () => connected,
    dropConnection: () => {
      connected = false;
      // mqtt.js reports the closed socket on a later turn.
      queueMicrotask(() => redelivery.disconnected());
    },
    onScheduled: (_error, delayMs) => scheduled.push(delayMs),
    onDropped: () => drops++,
  });
  return {
    redelivery,
    scheduled,
    drops: () => drops,
    /** mqtt.js connected again. */
    reconnect: () => (connected = true),
    /** One message whose handlers fail, from began() to settled(). */
    fail() {
      const on = redelivery.began();
      redelivery.failed(new Error("Downstream unavailable (test)"), on);
      redelivery.settled(on);
    },
    succeed() {
      const on = redelivery.began();
      redelivery.succeeded();
      redelivery.settled(on);
    },
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("redelivery drops the connection once for a burst of failures, after the delay", async () => {
  const f = fixture();
  for (let i = 0; i < 5; i++) f.fail();
  assert.deepEqual(f.scheduled, [DELAY_MS_MIN], "one forced reconnect scheduled, and reported, for the burst");
  assert.equal(f.drops(), 0, "not before the delay");
  await pause(DELAY_MS_MIN * 4);
  assert.equal(f.drops(), 1);
  assert.equal(f.redelivery.dropping, false, "the closed connection ends the drop");
});

Deno.test("redelivery doubles the delay while failures go on, up to the cap, and resets it on a success", async () => {
  const f = fixture();
  for (let round = 0; round < 4; round++) {
    f.fail();
    await pause(DELAY_MS_MAX * 2);
    f.reconnect();
  }
  assert.deepEqual(f.scheduled, [5, 10, 20, 20]);
  assert.equal(f.drops(), 4);
  f.succeed();
  f.fail();
  assert.deepEqual(f.scheduled.at(-1), DELAY_MS_MIN);
  f.redelivery.close();
});

Deno.test("redelivery keeps the backoff when a message succeeds while a forced reconnect is pending", async () => {
  const f = fixture();
  f.fail();
  await pause(DELAY_MS_MIN * 4);
  f.reconnect();
  f.fail(); // the second cycle: 2 × the minimum
  f.succeed(); // another message, beside the failing one
  await pause(DELAY_MS_MAX);
  f.reconnect();
  f.fail();
  assert.deepEqual(f.scheduled, [5, 10, 20]);
  f.redelivery.close();
});

Deno.test("redelivery waits for a running handler before it drops the connection", async () => {
  const f = fixture();
  f.fail();
  const running = f.redelivery.began();
  await pause(DELAY_MS_MIN * 4);
  assert.equal(f.drops(), 0, "the running handler's PUBACK must get out first");
  f.redelivery.succeeded();
  f.redelivery.settled(running);
  assert.equal(f.drops(), 1);
});

Deno.test("redelivery schedules nothing for a message whose connection closed already", async () => {
  const f = fixture();
  const on = f.redelivery.began();
  f.redelivery.disconnected(); // the reconnect under way delivers the message again
  f.redelivery.failed(new Error("Downstream unavailable (test)"), on);
  f.redelivery.settled(on);
  await pause(DELAY_MS_MIN * 4);
  assert.deepEqual(f.scheduled, []);
  assert.equal(f.drops(), 0);
});

Deno.test({
  name: "redelivery close() cancels a pending forced reconnect and leaves no timer",
  // On by default no longer (Deno 2): the timer of a pending forced reconnect must not outlive close().
  sanitizeOps: true,
}, () => {
  // Long enough to outlive the test: the sanitizer fails a timer left behind.
  const f = fixture(10_000);
  f.fail();
  f.redelivery.close();
  f.fail();
  assert.equal(f.drops(), 0);
  assert.deepEqual(f.scheduled, [10_000], "nothing scheduled after close()");
});
