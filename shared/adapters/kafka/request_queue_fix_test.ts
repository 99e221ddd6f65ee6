/** kafkajs's request queue, as patched by `_request_queue_fix.ts`: no idle timer, timers when something waits. */
import assert from "node:assert/strict";
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";
import "./_request_queue_fix.ts";

interface Queue {
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  pending: unknown[];
  checked: number;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

function queue(pending: unknown[], throttledUntil = -1): Queue {
  const q = Object.create((RequestQueue as unknown as { prototype: object }).prototype) as Queue;
  Object.assign(q, { throttledUntil, throttleCheckTimeoutId: null, pending, checked: 0 });
  q.checkPendingRequests = () => q.checked++;
  return q;
}

Deno.test("kafkajs request queue arms no timer when nothing is pending and nothing is throttled", () => {
  const q = queue([]);
  q.scheduleCheckPendingRequests();
  assert.equal(q.throttleCheckTimeoutId, null, "an idle connection must not wake its process every millisecond");
});

Deno.test("kafkajs request queue still checks a pending request, and waits out a broker throttle", async () => {
  const waiting = queue([{}]);
  waiting.scheduleCheckPendingRequests();
  assert.notEqual(waiting.throttleCheckTimeoutId, null);
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(waiting.checked, 1);

  const throttled = queue([], Date.now() + 30);
  throttled.scheduleCheckPendingRequests();
  assert.notEqual(throttled.throttleCheckTimeoutId, null);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(throttled.checked, 1);
});
