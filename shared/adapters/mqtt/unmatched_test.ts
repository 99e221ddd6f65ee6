import assert from "node:assert/strict";
import { createUnmatched } from "./unmatched.ts";

const INTERVAL_MS = 60_000;

/** Bookkeeping on a fake clock; `advance` moves it, `reports` holds what it reported. */
function fixture(keysMax = 10) {
  let nowMs = 1_000;
  const reports: string[] = [];
  const unmatched = createUnmatched({
    keysMax,
    reportIntervalMs: INTERVAL_MS,
    now: () => nowMs,
    clientId: "bv-test",
    holdMs: 5_000,
    onReport: (error) => reports.push(error.message),
  });
  return { unmatched, reports, advance: (ms: number) => (nowMs += ms) };
}

Deno.test("unmatched reports a subscription once, then at most once per interval with the count since", () => {
  const { unmatched, reports, advance } = fixture();
  for (let i = 0; i < 6; i++) unmatched.acknowledged("old/a", [], true);
  unmatched.acknowledged("old/b", [], true);
  assert.equal(reports.length, 2, "one report per topic");
  assert.match(reports[0], /^No handler for "old\/a": acknowledged unhandled after waiting 5000 ms for subscribe\(\)/);
  assert.match(reports[0], /session for "bv-test".*unsubscribe it, or connect once with a clean session/);
  advance(INTERVAL_MS);
  unmatched.acknowledged("old/a", [], true);
  assert.equal(reports.length, 3);
  assert.match(reports[2], /"old\/a": 6 such messages since the last report/, "the five held back and this one");
});

Deno.test("unmatched names an MQTT 5 subscription by its identifier, whatever the topic", () => {
  const { unmatched, reports } = fixture();
  unmatched.acknowledged("old/a", [42], true);
  unmatched.acknowledged("old/b", [42], true);
  assert.equal(reports.length, 1, "one subscription");
  assert.match(reports[0], /^No handler for "old\/a" \(subscription identifier 42\)/);
  assert.equal(unmatched.stale("old/c", [42]), true);
  assert.equal(unmatched.stale("old/c", []), false);
});

Deno.test("unmatched marks a subscription stale only once a message waited the whole hold", () => {
  const { unmatched } = fixture();
  assert.equal(unmatched.stale("old/a", []), false);
  unmatched.acknowledged("old/a", [], false); // QoS 0: never held
  assert.equal(unmatched.stale("old/a", []), false);
  unmatched.acknowledged("old/a", [], true);
  assert.equal(unmatched.stale("old/a", []), true);
  unmatched.acknowledged("old/a", [], false);
  assert.equal(unmatched.stale("old/a", []), true, "stays stale");
});

Deno.test("unmatched forgets the oldest subscription beyond keysMax", () => {
  const { unmatched, reports } = fixture(2);
  for (const topic of ["a", "b", "c"]) unmatched.acknowledged(topic, [], true);
  assert.deepEqual(["a", "b", "c"].map((topic) => unmatched.stale(topic, [])), [false, true, true]);
  unmatched.acknowledged("a", [], true);
  assert.equal(reports.length, 4, "a forgotten one is reported again");
  assert.throws(
    () => createUnmatched({ keysMax: 0, reportIntervalMs: 1, now: Date.now, clientId: "x", holdMs: 1, onReport() {} }),
    RangeError,
  );
});
