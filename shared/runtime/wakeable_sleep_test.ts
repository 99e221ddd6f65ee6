import assert from "node:assert/strict";
import { wakeableSleep } from "./wakeable_sleep.ts";

Deno.test("wakeableSleep() ends at its time, or at once on wake(); a wake with no sleep under way is forgotten", async () => {
  const pause = wakeableSleep();
  let started = performance.now();
  await pause.sleep(30);
  assert.ok(performance.now() - started >= 25, "slept its time");

  started = performance.now();
  const sleeping = pause.sleep(60_000);
  pause.wake();
  await sleeping;
  assert.ok(performance.now() - started < 1_000, "woken at once");

  pause.wake();
  started = performance.now();
  await pause.sleep(30);
  assert.ok(performance.now() - started >= 25, "an earlier wake did not cut this sleep short");
});
