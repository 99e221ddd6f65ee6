import assert from "node:assert/strict";
import { createPreciseSleep, TIMER_SLACK_MS } from "./precise_sleep.ts";

const wallMs = () => performance.timeOrigin + performance.now();

Deno.test("precise sleep never wakes before its deadline, short or long", async () => {
  const clock = await createPreciseSleep();
  try {
    for (const ms of [0.05, 0.3, 0.5, 1, 2, TIMER_SLACK_MS + 2]) {
      const start = wallMs();
      await clock.sleep(ms);
      assert.ok(wallMs() - start >= ms, `sleep(${ms}) woke after ${wallMs() - start} ms`);
    }
  } finally {
    clock.close();
  }
});

Deno.test("precise sleep serves concurrent short sleeps one after another, each after its own deadline", async () => {
  const clock = await createPreciseSleep();
  try {
    const start = wallMs();
    const woke: number[] = [];
    await Promise.all([0.8, 0.2, 0.5].map((ms, i) => clock.sleep(ms).then(() => woke.push(i))));
    assert.equal(woke.length, 3);
    assert.ok(wallMs() - start >= 0.8);
    // The buffer holds one deadline: the sleeps take turns in call order.
    assert.deepEqual(woke, [0, 1, 2]);
  } finally {
    clock.close();
  }
});

Deno.test("precise sleep: a sleep pending at close still resolves; later sleeps do not use the closed thread", async () => {
  const clock = await createPreciseSleep();
  const pending = clock.sleep(2);
  clock.close();
  await pending;
  const start = wallMs();
  await clock.sleep(1);
  // A closed clock does not wait on its thread (only the timer part would, and 1 ms has none).
  assert.ok(wallMs() - start < 1_000);
});
