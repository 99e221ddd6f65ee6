import assert from "node:assert/strict";
import { createRateLimiter } from "./rate_limiter.ts";

Deno.test("rate limiter allows a burst, then asks to wait until a token has refilled", () => {
  const clock = { ms: 1_000_000 };
  const limiter = createRateLimiter({ ratePerSec: 2, burst: 3, now: () => clock.ms });
  assert.deepEqual([1, 2, 3].map(() => limiter.take("a")), [0, 0, 0]);
  assert.equal(limiter.take("a"), 1);
  // Other keys have their own bucket.
  assert.equal(limiter.take("b"), 0);
  clock.ms += 500;
  assert.equal(limiter.take("a"), 0);
  assert.equal(limiter.take("a"), 1);
  // A slow rate yields a longer Retry-After.
  const slow = createRateLimiter({ ratePerSec: 0.1, burst: 1, now: () => clock.ms });
  assert.equal(slow.take("a"), 0);
  assert.equal(slow.take("a"), 10);
});

Deno.test("rate limiter keeps at most bucketsMax buckets, dropping idle ones first", () => {
  const clock = { ms: 0 };
  const limiter = createRateLimiter({ ratePerSec: 1, burst: 2, bucketsMax: 3, now: () => clock.ms });
  limiter.take("busy");
  limiter.take("busy");
  limiter.take("idle-1");
  limiter.take("idle-2");
  clock.ms += 1_500; // idle buckets are full again; "busy" has refilled only 1.5 of 2
  limiter.take("new");
  assert.equal(limiter.size(), 2);
  // "busy" kept its state: one token left after this take, none after the next.
  assert.equal(limiter.take("busy"), 0);
  assert.equal(limiter.take("busy"), 1);
  // With nothing idle, a flood of new keys still cannot grow the table past the bound.
  for (let i = 0; i < 100; i++) limiter.take(`flood-${i}`);
  assert.ok(limiter.size() <= 3);
});

Deno.test("rate limiter refuses a configuration that could not work", () => {
  const now = () => 0;
  assert.throws(() => createRateLimiter({ ratePerSec: 0, burst: 1, now }), RangeError);
  assert.throws(() => createRateLimiter({ ratePerSec: 1, burst: 0.5, now }), RangeError);
  assert.throws(() => createRateLimiter({ ratePerSec: 1, burst: 1, bucketsMax: 0, now }), RangeError);
});
