import assert from "node:assert/strict";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import {
  ADMIN,
  assertProblem,
  AUDIENCE,
  type Harness,
  type HarnessOptions,
  ISSUER,
  onPglite,
  onPostgres,
} from "./_auth_fixture.ts";
import { createAuthModule, LOGIN_THROTTLED_CODE } from "./mod.ts";
import { createPasswordHasher, type PasswordHasher } from "./password.ts";

const PASSWORD = "correct-horse-1";
const WRONG = "wrong-password-1";

/**
 * A cheap scrypt (the cost is not under test here) that counts verifications, can play an overloaded hasher, and can
 * hold verifications until `beforeVerify` resolves (so concurrent logins are all in flight at once).
 */
function countingHasher() {
  const real = createPasswordHasher({ params: { N: 2 ** 10, r: 8, p: 1 } });
  const state: { verified: number; busy: boolean; beforeVerify?: () => Promise<void> } = { verified: 0, busy: false };
  const passwords: PasswordHasher = {
    hash: (password) => real.hash(password),
    verify: async (password, encoded) => {
      if (state.busy) throw new ProblemError("COMMON.RATE_LIMITED", "Busy", { headers: { "retry-after": "1" } });
      state.verified++;
      await state.beforeVerify?.();
      return await real.verify(password, encoded);
    },
  };
  return { state, passwords };
}

/**
 * A gate that opens once `expected` events have arrived: a verification that started, or an answer that came without
 * one. Concurrent logins wait in the hasher until every one of them has either reached it or been answered, so the
 * test knows they overlapped, with no sleeps.
 */
function gate(expected: number) {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => open = resolve);
  const arrive = () => {
    if (++arrived === expected) open();
  };
  return { opened, arrive };
}

/**
 * Holds verifications until `release()` is called; `started` resolves once `count` of them are held, so a test can
 * act while exactly those logins are in flight.
 */
function hold(count: number) {
  const { opened: started, arrive } = gate(count);
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const beforeVerify = () => {
    arrive();
    return released;
  };
  return { started, release, beforeVerify };
}

type Hasher = ReturnType<typeof countingHasher>["state"];

/** Registers `fn` on a fresh PostgreSQL database and on PGlite, with a counting hasher. */
function throttleTest(name: string, fn: (h: Harness, hasher: Hasher) => Promise<void>, options?: HarnessOptions) {
  for (const [db, run] of [["postgres", onPostgres], ["pglite", onPglite]] as const) {
    Deno.test(`[${db}] ${name}`, async () => {
      const { state, passwords } = countingHasher();
      await run((h) => fn(h, state), { passwords, ...options });
    });
  }
}

const login = (h: Harness, email: string, password: string, headers?: Record<string, string>) =>
  h.post("/api/v1/auth/login", { email, password }, undefined, headers);

async function failTimes(h: Harness, times: number, email: string, headers?: Record<string, string>) {
  for (let i = 0; i < times; i++) {
    await assertProblem(await login(h, email, WRONG, headers), 401, "AUTH.INVALID_CREDENTIALS");
  }
}

async function assertThrottled(response: Response, retryAfterSec: number): Promise<void> {
  assert.equal(response.headers.get("retry-after"), String(retryAfterSec));
  await assertProblem(response, 429, LOGIN_THROTTLED_CODE);
}

throttleTest(
  "login after 5 wrong passwords for one e-mail answers 429 with Retry-After, even with the right password, and hashes nothing",
  async (h, hasher) => {
    await h.signup("kim@example.com", PASSWORD);
    await failTimes(h, 5, "kim@example.com");
    const verified = hasher.verified;
    await assertThrottled(await login(h, "kim@example.com", PASSWORD), 900);
    // The same account in another letter case is the same counter; the window runs from the first failure.
    h.clock.nowMs += 600_000;
    await assertThrottled(await login(h, " KIM@Example.COM ", PASSWORD), 300);
    assert.equal(hasher.verified, verified, "a throttled attempt runs no scrypt");
    await h.login(ADMIN.email, ADMIN.password);
  },
);

throttleTest("a throttled unknown e-mail gets exactly the answer a throttled account gets", async (h) => {
  await h.signup("lee@example.com", PASSWORD);
  await failTimes(h, 5, "lee@example.com");
  await failTimes(h, 5, "nobody@example.com");
  const [known, unknown] = [await login(h, "lee@example.com", WRONG), await login(h, "nobody@example.com", WRONG)];
  assert.equal(known.status, 429);
  assert.deepEqual([...unknown.headers], [...known.headers]);
  const [knownBody, unknownBody] = [await known.json(), await unknown.json()];
  assert.deepEqual({ ...unknownBody, traceId: undefined }, { ...knownBody, traceId: undefined });
});

throttleTest("a successful login clears the e-mail's failures", async (h) => {
  await h.signup("max@example.com", PASSWORD);
  await failTimes(h, 4, "max@example.com");
  await h.login("max@example.com", PASSWORD);
  await failTimes(h, 5, "max@example.com");
  await assertThrottled(await login(h, "max@example.com", PASSWORD), 900);
});

throttleTest(
  "unknown e-mails from one address are throttled after 20 failures; other addresses and unknown ones still log in",
  async (h, hasher) => {
    await h.signup("ned@example.com", PASSWORD);
    const attacker = { "x-forwarded-for": "203.0.113.7" };
    for (let i = 0; i < 20; i++) await failTimes(h, 1, `${crypto.randomUUID()}@example.com`, attacker);
    const verified = hasher.verified;
    await assertThrottled(await login(h, `${crypto.randomUUID()}@example.com`, WRONG, attacker), 300);
    await assertThrottled(await login(h, "ned@example.com", PASSWORD, attacker), 300);
    // What a client writes into X-Forwarded-For itself does not move it to another address.
    const spoofed = { "x-forwarded-for": "198.51.100.9, 203.0.113.7, 127.0.0.1" };
    await assertThrottled(await login(h, "ned@example.com", PASSWORD, spoofed), 300);
    assert.equal(hasher.verified, verified, "throttled attempts run no scrypt");

    assert.equal((await login(h, "ned@example.com", PASSWORD, { "x-forwarded-for": "198.51.100.2" })).status, 200);
    assert.equal((await login(h, "ned@example.com", PASSWORD)).status, 200, "no address: counted per e-mail only");
  },
);

throttleTest("attempts are allowed again once the window has passed, and expired counters are deleted", async (h) => {
  await h.signup("oli@example.com", PASSWORD);
  await failTimes(h, 5, "oli@example.com", { "x-forwarded-for": "203.0.113.8" });
  await failTimes(h, 3, "nobody@example.com");
  h.clock.nowMs += 899_000;
  await assertThrottled(await login(h, "oli@example.com", PASSWORD), 1);
  h.clock.nowMs += 1_000;
  await h.login("oli@example.com", PASSWORD);
  // Every window above has ended; the next login after the sweep interval deletes their rows.
  h.clock.nowMs += 60_000;
  await h.login("oli@example.com", PASSWORD);
  const rows = await h.sql.query<{ key: string }>`select key from auth_login_failures`;
  assert.deepEqual(rows, []);
  await failTimes(h, 5, "oli@example.com");
  await assertThrottled(await login(h, "oli@example.com", PASSWORD), 900);
});

throttleTest(
  "concurrent wrong guesses for one e-mail run at most 5 verifications",
  async (h, hasher) => {
    await h.signup("pat@example.com", PASSWORD);
    const verified = hasher.verified;
    const answers = await Promise.all(Array.from({ length: 12 }, () => login(h, "pat@example.com", WRONG)));
    const statuses = answers.map((response) => response.status).sort();
    await Promise.all(answers.map((response) => response.body?.cancel()));
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    assert.equal(hasher.verified - verified, 5);
    await assertThrottled(await login(h, "pat@example.com", PASSWORD), 900);
  },
);

throttleTest(
  "12 concurrent wrong guesses for one e-mail run 5 verifications; those refused while the 5 are in flight may retry in a second",
  async (h, hasher) => {
    await h.signup("ann@example.com", PASSWORD);
    const verified = hasher.verified;
    // The 5 verifications wait until the other 7 have been answered, so every refusal met 5 places in flight.
    const { opened, arrive } = gate(12);
    hasher.beforeVerify = () => {
      arrive();
      return opened;
    };
    const answers = await Promise.all(Array.from({ length: 12 }, async () => {
      const response = await login(h, "ann@example.com", WRONG);
      if (response.status !== 401) arrive();
      return response;
    }));
    hasher.beforeVerify = undefined;
    const refused = answers.filter((response) => response.status !== 401);
    for (const response of answers.filter((response) => response.status === 401)) await response.body?.cancel();
    assert.equal(refused.length, 7);
    for (const response of refused) await assertThrottled(response, 1);
    assert.equal(hasher.verified - verified, 5);
    // The 5 finished as failures: now the account is locked for the window.
    await assertThrottled(await login(h, "ann@example.com", PASSWORD), 900);
  },
);

throttleTest(
  "a correct login while 5 logins to the account are in flight answers 429 with Retry-After: 1, not a lockout",
  async (h, hasher) => {
    await h.signup("uma@example.com", PASSWORD);
    const held = hold(5);
    hasher.beforeVerify = held.beforeVerify;
    const inFlight = Array.from({ length: 5 }, () => login(h, "uma@example.com", PASSWORD));
    await held.started;
    const verified = hasher.verified;
    await assertThrottled(await login(h, "uma@example.com", PASSWORD), 1);
    assert.equal(hasher.verified, verified, "a refused attempt runs no scrypt");
    hasher.beforeVerify = undefined;
    held.release();
    const statuses = await Promise.all(inFlight.map(async (answer) => {
      const response = await answer;
      await response.body?.cancel();
      return response.status;
    }));
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
    h.clock.nowMs += 1_000;
    await h.login("uma@example.com", PASSWORD);
  },
);

throttleTest(
  "only finished failures lock an account: 3 failures and 2 guesses in flight refuse for a second, then lock it",
  async (h, hasher) => {
    await h.signup("vic@example.com", PASSWORD);
    await failTimes(h, 3, "vic@example.com");
    const held = hold(2);
    hasher.beforeVerify = held.beforeVerify;
    const guesses = Array.from({ length: 2 }, () => login(h, "vic@example.com", WRONG));
    await held.started;
    await assertThrottled(await login(h, "vic@example.com", PASSWORD), 1);
    hasher.beforeVerify = undefined;
    held.release();
    for (const response of await Promise.all(guesses)) {
      await assertProblem(response, 401, "AUTH.INVALID_CREDENTIALS");
    }
    h.clock.nowMs += 1_000;
    await assertThrottled(await login(h, "vic@example.com", PASSWORD), 899);
  },
);

throttleTest("a login refused by a busy hasher is not counted as a failure", async (h, hasher) => {
  await h.signup("quinn@example.com", PASSWORD);
  hasher.busy = true;
  for (let i = 0; i < 8; i++) {
    const response = await login(h, "quinn@example.com", WRONG, { "x-forwarded-for": "203.0.113.9" });
    assert.equal(response.headers.get("retry-after"), "1");
    await assertProblem(response, 429, "COMMON.RATE_LIMITED");
  }
  hasher.busy = false;
  const rows = await h.sql.query<{ key: string; failures: number }>`
    select key, failures from auth_login_failures order by key`;
  // The address counts finished failures only: it has no row at all.
  assert.deepEqual(rows, [{ key: "email:quinn@example.com", failures: 0 }]);
  await h.login("quinn@example.com", PASSWORD);
});

throttleTest(
  "25 concurrent correct logins from one address all succeed, and leave the address nothing counted",
  async (h, hasher) => {
    // The local platform: edge, ingress and service on 127.0.0.1, so every local user is this one address.
    const local = { "x-forwarded-for": "127.0.0.1" };
    const emails = Array.from({ length: 25 }, (_, i) => `user${i}@example.com`);
    for (const email of emails) await h.signup(email, PASSWORD);
    const { opened, arrive } = gate(emails.length);
    hasher.beforeVerify = () => {
      arrive();
      return opened;
    };
    const answers = await Promise.all(emails.map(async (email) => {
      const response = await login(h, email, PASSWORD, local);
      if (response.status !== 200) arrive();
      return response;
    }));
    const statuses = answers.map((response) => response.status);
    await Promise.all(answers.map((response) => response.body?.cancel()));
    assert.deepEqual(statuses, emails.map(() => 200));
    hasher.beforeVerify = undefined;
    const rows = await h.sql.query<{ key: string }>`select key from auth_login_failures where key like 'address:%'`;
    assert.deepEqual(rows, []);
    // Logins in flight held no place either: 20 failures are still needed to throttle the address.
    for (let i = 0; i < 19; i++) await failTimes(h, 1, `${crypto.randomUUID()}@example.com`, local);
    assert.equal((await login(h, emails[0], PASSWORD, local)).status, 200);
    await failTimes(h, 1, `${crypto.randomUUID()}@example.com`, local);
    await assertThrottled(await login(h, emails[1], PASSWORD, local), 300);
  },
);

throttleTest(
  "20 concurrent wrong guesses from one address are all verified, then the address is throttled",
  async (h) => {
    const attacker = { "x-forwarded-for": "203.0.113.10" };
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => login(h, `${crypto.randomUUID()}@example.com`, WRONG, attacker)),
    );
    for (const response of answers) await assertProblem(response, 401, "AUTH.INVALID_CREDENTIALS");
    await assertThrottled(await login(h, `${crypto.randomUUID()}@example.com`, WRONG, attacker), 300);
  },
);

throttleTest(
  "an address's window opens at its first failure, not at an earlier successful login",
  async (h) => {
    await h.signup("sam@example.com", PASSWORD);
    const office = { "x-forwarded-for": "203.0.113.11" };
    assert.equal((await login(h, "sam@example.com", PASSWORD, office)).status, 200);
    h.clock.nowMs += 200_000;
    for (let i = 0; i < 20; i++) await failTimes(h, 1, `${crypto.randomUUID()}@example.com`, office);
    await assertThrottled(await login(h, "sam@example.com", PASSWORD, office), 300);
    h.clock.nowMs += 299_000;
    await assertThrottled(await login(h, "sam@example.com", PASSWORD, office), 1);
  },
);

throttleTest(
  "concurrent wrong guesses for one e-mail from one address run at most 5 verifications",
  async (h, hasher) => {
    await h.signup("tess@example.com", PASSWORD);
    const attacker = { "x-forwarded-for": "203.0.113.12" };
    const answers = await Promise.all(Array.from({ length: 12 }, () => login(h, "tess@example.com", WRONG, attacker)));
    const statuses = answers.map((response) => response.status).sort();
    await Promise.all(answers.map((response) => response.body?.cancel()));
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    assert.equal(hasher.verified, 5);
    const [address] = await h.sql.query<{ failures: number }>`
    select failures from auth_login_failures where key = 'address:203.0.113.12'`;
    assert.equal(address.failures, 5, "refusals are not failures");
  },
);

throttleTest("lower limits and windows set on the module apply", async (h) => {
  await failTimes(h, 2, "ray@example.com");
  await assertThrottled(await login(h, "ray@example.com", WRONG), 60);
  h.clock.nowMs += 60_000;
  await failTimes(h, 1, "ray@example.com");
}, { loginThrottle: { emailFailuresMax: 2, emailWindowMs: 60_000 } });

Deno.test("createAuthModule() refuses login throttle options out of range before touching the database", async () => {
  const untouchable = new Proxy({}, {
    get: () => () => Promise.reject(new Error("the database must not be touched")),
  }) as Sql;
  const bad = [
    [{ emailFailuresMax: 0 }, /loginThrottle\.emailFailuresMax must be an integer from 1 to 1000, got 0/],
    [{ addressFailuresMax: 2.5 }, /loginThrottle\.addressFailuresMax/],
    [{ emailWindowMs: 999 }, /loginThrottle\.emailWindowMs must be an integer from 1000 to 86400000 ms, got 999/],
    [{ addressWindowMs: Number.NaN }, /loginThrottle\.addressWindowMs/],
    [{ sweepIntervalMs: 86_400_001 }, /loginThrottle\.sweepIntervalMs/],
  ] as const;
  for (const [loginThrottle, message] of bad) {
    await assert.rejects(
      createAuthModule({ sql: untouchable, issuer: ISSUER, audience: AUDIENCE, loginThrottle }),
      (error: unknown) => error instanceof RangeError && message.test(error.message),
    );
  }
});
