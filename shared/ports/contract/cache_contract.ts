/**
 * @module
 * The behaviour every {@linkcode Cache} adapter must show, written once and run against each adapter
 * (`cacheContract("redis", …)`, `cacheContract("memory", …)`). Redis is the reference: when the embedded
 * adapter and this suite disagree with real Redis, Redis wins.
 */

import assert from "node:assert/strict";
import type { Cache } from "../cache.ts";
import { cacheVersionContract } from "./_cache_version_contract.ts";
import { delay, waitFor } from "./_wait_for.ts";

/** A fresh, isolated cache (its own key prefix or instance) and how to remove what the test left. */
export type MakeCache = () => Promise<{ cache: Cache; cleanup: () => Promise<void> }>;

/** Registers the cache contract tests, named `[<kind>] cache …`. */
export function cacheContract(kind: string, makeCache: MakeCache): void {
  function test(name: string, body: (cache: Cache) => Promise<void>): void {
    Deno.test(`[${kind}] cache ${name}`, async () => {
      const { cache, cleanup } = await makeCache();
      try {
        await body(cache);
      } finally {
        await cleanup();
      }
    });
  }

  test("get() returns what set() stored and del() counts the keys that existed", async (cache) => {
    assert.equal(await cache.get("greeting"), null);
    await cache.set("greeting", "héllo ✓");
    assert.equal(await cache.get("greeting"), "héllo ✓");
    await cache.set("greeting", "bye");
    assert.equal(await cache.get("greeting"), "bye");
    assert.equal(await cache.del("greeting", "never-set"), 1);
    assert.equal(await cache.get("greeting"), null);
    assert.equal(await cache.del("greeting"), 0);
  });

  test("a key set with ttlMs disappears once the TTL has passed", async (cache) => {
    const startedMs = Date.now();
    await cache.set("session", "s1", { ttlMs: 150 });
    assert.equal(await cache.get("session"), "s1");
    await waitFor("the key to expire", async () => (await cache.get("session")) === null, {
      timeoutMs: 2_000,
    });
    const expiredAfterMs = Date.now() - startedMs;
    assert.ok(expiredAfterMs >= 140, `expired after ${expiredAfterMs} ms, before its 150 ms TTL`);
    assert.equal(await cache.ttlMs("session"), -2);
  });

  test("ttlMs() is the remaining time, -1 without TTL, -2 for a missing key", async (cache) => {
    assert.equal(await cache.ttlMs("missing"), -2);
    await cache.set("forever", "x");
    assert.equal(await cache.ttlMs("forever"), -1);
    await cache.set("soon", "x", { ttlMs: 10_000 });
    const remainingMs = await cache.ttlMs("soon");
    assert.ok(remainingMs > 9_000 && remainingMs <= 10_000, `remaining ${remainingMs} ms`);
    await cache.set("soon", "y");
    assert.equal(await cache.ttlMs("soon"), -1, "a set() without ttlMs clears the previous TTL");
  });

  test("set() rejects a ttlMs that is not a positive integer", async (cache) => {
    await assert.rejects(cache.set("k", "v", { ttlMs: 0 }), RangeError);
    await assert.rejects(cache.set("k", "v", { ttlMs: 1.5 }), RangeError);
    assert.equal(await cache.get("k"), null);
  });

  test("incr() is atomic: 200 concurrent increments count exactly 200", async (cache) => {
    const results = await Promise.all(Array.from({ length: 200 }, () => cache.incr("hits")));
    assert.equal(await cache.get("hits"), "200");
    assert.deepEqual([...results].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1));
    assert.equal(await cache.incr("hits", -50), 150);
    assert.equal(await cache.incr("fresh", 5), 5, "a missing key counts as 0");
    assert.equal(await cache.ttlMs("fresh"), -1);
  });

  test("incr() keeps the key's TTL, as Redis INCRBY does", async (cache) => {
    await cache.set("quota", "5", { ttlMs: 10_000 });
    assert.equal(await cache.incr("quota", 2), 7);
    const remainingMs = await cache.ttlMs("quota");
    assert.ok(remainingMs > 9_000 && remainingMs <= 10_000, `remaining ${remainingMs} ms`);
  });

  test("incr() rejects a value that is not an integer and leaves it unchanged", async (cache) => {
    await cache.set("name", "alice");
    await assert.rejects(cache.incr("name"), /not an integer/);
    await cache.set("decimal", "1.5");
    await assert.rejects(cache.incr("decimal"), /not an integer/);
    assert.equal(await cache.get("name"), "alice");
  });

  test("publish() reaches subscribers and stops after they unsubscribe", async (cache) => {
    const first: string[] = [];
    const unsubscribeFirst = await cache.subscribe("prices", (message) => first.push(message));
    assert.equal(await cache.publish("prices", "p1"), 1);
    await waitFor("the first message", () => first.length === 1);
    assert.deepEqual(first, ["p1"]);

    await unsubscribeFirst();
    assert.equal(await cache.publish("prices", "nobody listens"), 0);
    // A second subscriber proves delivery is flowing: messages on one connection arrive in order, so once
    // it has "p2" the unsubscribed callback would have had it too.
    const second: string[] = [];
    const unsubscribeSecond = await cache.subscribe("prices", (message) => second.push(message));
    assert.equal(await cache.publish("prices", "p2"), 1);
    await waitFor("the second subscriber's message", () => second.length === 1);
    assert.deepEqual(first, ["p1"]);
    assert.deepEqual(second, ["p2"]);
    await unsubscribeSecond();
  });

  test("two caches with different prefixes see neither each other's keys nor channels", async (a) => {
    const { cache: b, cleanup } = await makeCache();
    try {
      await a.set("shared-name", "from a");
      assert.equal(await b.get("shared-name"), null);
      await b.set("shared-name", "from b");
      assert.equal(await a.get("shared-name"), "from a");
      assert.equal(await b.del("shared-name"), 1);
      assert.equal(await a.get("shared-name"), "from a");
      assert.equal(await a.incr("counter"), 1);
      assert.equal(await b.incr("counter"), 1);

      const heardByB: string[] = [];
      const unsubscribe = await b.subscribe("events", (message) => heardByB.push(message));
      assert.equal(await a.publish("events", "for a's world"), 0);
      assert.equal(await b.publish("events", "for b's world"), 1);
      await waitFor("b's own message", () => heardByB.length === 1);
      await delay(20);
      assert.deepEqual(heardByB, ["for b's world"]);
      await unsubscribe();
    } finally {
      await cleanup();
    }
  });

  test("ping() resolves against a healthy cache", async (cache) => {
    await cache.ping(1_000);
  });

  cacheVersionContract(test);

  test("after close() reads, writes and subscribe() reject (close is idempotent)", async (cache) => {
    await cache.close();
    await cache.close();
    await assert.rejects(() => cache.get("k"));
    await assert.rejects(() => cache.set("k", "v"));
    await assert.rejects(() => cache.subscribe("channel", () => {}), /closed/);
  });
}
