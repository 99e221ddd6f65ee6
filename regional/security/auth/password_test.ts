import assert from "node:assert/strict";
import { createPasswordHasher, SCRYPT_PARAMS_DEFAULT } from "./password.ts";

const fast = createPasswordHasher({ params: { N: 2 ** 10, r: 8, p: 1 } });

Deno.test("hash() encodes scrypt$N$r$p$salt$hash with a fresh salt each time", async () => {
  const a = await fast.hash("correct-horse-1");
  const b = await fast.hash("correct-horse-1");
  assert.match(a, /^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, b);
});

Deno.test("verify() accepts the password and refuses any other or a malformed hash", async () => {
  const encoded = await fast.hash("correct-horse-1");
  assert.equal(await fast.verify("correct-horse-1", encoded), true);
  assert.equal(await fast.verify("correct-horse-2", encoded), false);
  assert.equal(await fast.verify("correct-horse-1", encoded.replace("$1024$", "$1000$")), false);
  assert.equal(await fast.verify("correct-horse-1", "bcrypt$whatever"), false);
  assert.equal(await fast.verify("correct-horse-1", encoded.slice(0, -5)), false);
  // A hash made with other parameters still verifies: they travel in the encoded string.
  assert.equal(await createPasswordHasher().verify("correct-horse-1", encoded), true);
});

Deno.test("one hash with the default parameters takes tens of milliseconds (measured, printed)", async () => {
  const hasher = createPasswordHasher();
  const started = performance.now();
  const encoded = await hasher.hash("correct-horse-1");
  const elapsedMs = performance.now() - started;
  console.log(`scrypt N=${SCRYPT_PARAMS_DEFAULT.N} r=8 p=1: one hash took ${elapsedMs.toFixed(0)} ms`);
  assert.ok(elapsedMs > 20, `a hash took only ${elapsedMs} ms; the KDF is too cheap`);
  assert.ok(encoded.startsWith(`scrypt$${2 ** 15}$8$1$`));
});

Deno.test("callers beyond the queue bound are refused with 429 COMMON.RATE_LIMITED", async () => {
  const tiny = createPasswordHasher({ params: { N: 2 ** 10, r: 8, p: 1 }, concurrencyMax: 1, queueMax: 1 });
  const results = await Promise.allSettled([tiny.hash("a-password"), tiny.hash("a-password"), tiny.hash("a-password")]);
  assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled", "rejected"]);
  assert.equal((results[2] as PromiseRejectedResult).reason.code, "COMMON.RATE_LIMITED");
  assert.ok((await tiny.hash("a-password")).startsWith("scrypt$"), "slots are released");
});
