import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { cacheContract } from "../../ports/contract/cache_contract.ts";
import { realInfra } from "../../testing/real_infra.ts";
import { uniqueName } from "../../testing/unique.ts";
import { waitFor } from "../../ports/contract/_wait_for.ts";
import { createRedisCache } from "./mod.ts";

/** Deletes every key under `keyPrefix` with SCAN (never KEYS: it blocks a shared server). */
async function deleteKeysWithPrefix(keyPrefix: string): Promise<void> {
  const admin = new Redis(realInfra.redisUrl, { connectTimeout: 2_000, commandTimeout: 2_000, lazyConnect: true });
  try {
    await admin.connect();
    let cursor = "0";
    do {
      const [next, keys] = await admin.scan(cursor, "MATCH", `${keyPrefix}*`, "COUNT", 500);
      if (keys.length > 0) await admin.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    await admin.quit();
  }
}

cacheContract("redis", () => {
  const keyPrefix = `${uniqueName("bvtest")}:`;
  const cache = createRedisCache({ url: realInfra.redisUrl, keyPrefix, connectTimeoutMs: 2_000 });
  return Promise.resolve({
    cache,
    cleanup: async () => {
      await cache.close();
      await deleteKeysWithPrefix(keyPrefix);
    },
  });
});

Deno.test("[redis] cache stores keys under its prefix, so SCAN on the prefix finds them all", async () => {
  const keyPrefix = `${uniqueName("bvtest")}:`;
  const cache = createRedisCache({ url: realInfra.redisUrl, keyPrefix });
  const admin = new Redis(realInfra.redisUrl, { lazyConnect: true, commandTimeout: 2_000 });
  try {
    await admin.connect();
    await cache.set("a", "1", { ttlMs: 60_000 });
    await cache.incr("b");
    assert.equal(await admin.get(`${keyPrefix}a`), "1");
    assert.equal(await admin.get(`${keyPrefix}b`), "1");
    const ttlMs = await admin.pttl(`${keyPrefix}a`);
    assert.ok(ttlMs > 59_000 && ttlMs <= 60_000, `PX was not applied: PTTL ${ttlMs}`);
    // The Lua scripts get their keys as KEYS, which ioredis prefixes too: nothing lands outside the prefix.
    const mark = { markKey: "c:v", version: 2, markTtlMs: 120_000 };
    assert.equal(await cache.setUnlessStale("c", "filled", { ...mark, ttlMs: 60_000 }), true);
    assert.deepEqual([await admin.get(`${keyPrefix}c`), await admin.get(`${keyPrefix}c:v`)], ["filled", "2"]);
    assert.equal(await cache.invalidateVersion(["c"], { ...mark, version: 3 }), 1);
    assert.deepEqual([await admin.get(`${keyPrefix}c`), await admin.get(`${keyPrefix}c:v`)], [null, "3"]);
    assert.equal(await admin.exists("c", "c:v"), 0);
  } finally {
    await cache.close();
    await deleteKeysWithPrefix(keyPrefix);
    await admin.quit();
  }
});

Deno.test("[redis] cache ping() rejects within its timeout when Redis is unreachable", async () => {
  // Port 1 on loopback refuses connections: the client keeps retrying, ping must still answer in time.
  const cache = createRedisCache({ url: "redis://127.0.0.1:1", keyPrefix: "bvtest:", commandTimeoutMs: 5_000 });
  try {
    const startedMs = Date.now();
    await assert.rejects(cache.ping(300), /did not answer PING within 300 ms/);
    assert.ok(Date.now() - startedMs < 1_000);
  } finally {
    await cache.close();
  }
});

Deno.test("[redis] createRedisCache() refuses an empty key prefix", () => {
  assert.throws(() => createRedisCache({ url: realInfra.redisUrl, keyPrefix: "" }), TypeError);
});

Deno.test("[redis] cache reconnects and re-subscribes after its connections are killed", async () => {
  const keyPrefix = `${uniqueName("bvtest")}:`;
  const cache = createRedisCache({ url: realInfra.redisUrl, keyPrefix });
  const admin = new Redis(realInfra.redisUrl, { lazyConnect: true, commandTimeout: 2_000 });
  try {
    await admin.connect();
    const heard: string[] = [];
    await cache.subscribe("news", (message) => heard.push(message));
    await cache.set("k", "before");
    // Killing only the connections named after our prefix looks to the client like a Redis restart,
    // without disturbing anyone else on the shared server.
    const clients = String(await admin.call("CLIENT", "LIST")).split("\n");
    const ours = clients.filter((line) => line.includes(` name=bv-cache:${keyPrefix} `));
    assert.equal(ours.length, 2, "one command and one subscriber connection");
    for (const line of ours) await admin.call("CLIENT", "KILL", "ID", /\bid=(\d+)/.exec(line)![1]);
    assert.equal(await cache.get("k"), "before", "a command issued while reconnecting waits and succeeds");
    let published = 0;
    await waitFor("the subscription to come back", async () => {
      published = await cache.publish("news", "after");
      return published === 1;
    });
    await waitFor("the message after the reconnect", () => heard.includes("after"));
  } finally {
    await cache.close();
    await deleteKeysWithPrefix(keyPrefix);
    await admin.quit();
  }
});
