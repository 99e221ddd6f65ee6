import assert from "node:assert/strict";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import {
  assertProblem,
  AUDIENCE,
  type Harness,
  type HarnessOptions,
  ISSUER,
  onPglite,
  onPostgres,
} from "./_auth_fixture.ts";
import { createAuthModule, SIGNUP_THROTTLED_CODE } from "./mod.ts";
import { createPasswordHasher, type PasswordHasher } from "./password.ts";

const PASSWORD = "correct-horse-1";

/**
 * A cheap scrypt (the cost is not under test here) that counts hashes, can play an overloaded hasher, and can hold
 * hashes until `beforeHash` resolves (so concurrent sign-ups are all in flight at once).
 */
function countingHasher() {
  const real = createPasswordHasher({ params: { N: 2 ** 10, r: 8, p: 1 } });
  const state: { hashed: number; busy: boolean; beforeHash?: () => Promise<void> } = { hashed: 0, busy: false };
  const passwords: PasswordHasher = {
    hash: async (password) => {
      if (state.busy) throw new ProblemError("COMMON.RATE_LIMITED", "Busy", { headers: { "retry-after": "1" } });
      state.hashed++;
      await state.beforeHash?.();
      return await real.hash(password);
    },
    verify: (password, encoded) => real.verify(password, encoded),
  };
  return { state, passwords };
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

const signup = (h: Harness, email: string, headers?: Record<string, string>) =>
  h.post("/api/v1/auth/signup", { email, password: PASSWORD }, undefined, headers);

const from = (address: string) => ({ "x-forwarded-for": address });

async function signUpTimes(h: Harness, times: number, headers?: Record<string, string>): Promise<void> {
  for (let i = 0; i < times; i++) {
    const response = await signup(h, `${crypto.randomUUID()}@example.com`, headers);
    assert.equal(response.status, 201, await response.text());
  }
}

async function assertThrottled(response: Response, retryAfterSec: number): Promise<void> {
  assert.equal(response.headers.get("retry-after"), String(retryAfterSec));
  await assertProblem(response, 429, SIGNUP_THROTTLED_CODE);
}

throttleTest(
  "the 11th sign-up from one address within an hour answers 429 with Retry-After and hashes nothing",
  async (h, hasher) => {
    const client = from("203.0.113.20");
    await signUpTimes(h, 10, client);
    const hashed = hasher.hashed;
    await assertThrottled(await signup(h, "eve@example.com", client), 3600);
    h.clock.nowMs += 1_800_000;
    await assertThrottled(await signup(h, "eve@example.com", client), 1800);
    assert.equal(hasher.hashed, hashed, "a throttled sign-up runs no scrypt");
    // The refused e-mail was not taken; other addresses, and calls with no address, still sign up.
    assert.equal((await signup(h, "eve@example.com", from("198.51.100.3"))).status, 201);
    await h.signup("fay@example.com");
    // Sign-ups and login failures are separate counts: the address still logs in.
    assert.equal(
      (await h.post("/api/v1/auth/login", { email: "fay@example.com", password: PASSWORD }, undefined, client))
        .status,
      200,
    );
    h.clock.nowMs += 1_800_000;
    assert.equal((await signup(h, "gus@example.com", client)).status, 201, "a new window once the hour has passed");
  },
);

throttleTest("a sign-up for a taken e-mail counts; one refused by a busy hasher does not", async (h, hasher) => {
  const client = from("203.0.113.21");
  hasher.busy = true;
  for (let i = 0; i < 12; i++) {
    const response = await signup(h, `${crypto.randomUUID()}@example.com`, client);
    assert.equal(response.headers.get("retry-after"), "1");
    await assertProblem(response, 429, "COMMON.RATE_LIMITED");
  }
  hasher.busy = false;
  await signUpTimes(h, 8, client);
  await h.signup("hal@example.com");
  await assertProblem(await signup(h, "hal@example.com", client), 409, "AUTH.EMAIL_TAKEN");
  await signUpTimes(h, 1, client);
  await assertThrottled(await signup(h, "ivy@example.com", client), 3600);
});

throttleTest(
  "25 concurrent sign-ups from one address run 10 hashes; those refused while the 10 are in flight may retry in a second",
  async (h, hasher) => {
    const client = from("2001:db8:1:2::7");
    const hashed = hasher.hashed;
    // The 10 hashes wait until the other 15 have been answered, so every refusal met 10 places in flight.
    let arrived = 0;
    let open!: () => void;
    const opened = new Promise<void>((resolve) => open = resolve);
    const arrive = () => {
      if (++arrived === 25) open();
    };
    hasher.beforeHash = () => {
      arrive();
      return opened;
    };
    const answers = await Promise.all(Array.from({ length: 25 }, async () => {
      const response = await signup(h, `${crypto.randomUUID()}@example.com`, client);
      if (response.status !== 201) arrive();
      return response;
    }));
    hasher.beforeHash = undefined;
    const refused = answers.filter((response) => response.status !== 201);
    for (const response of answers.filter((response) => response.status === 201)) await response.body?.cancel();
    assert.equal(refused.length, 15);
    for (const response of refused) await assertThrottled(response, 1);
    assert.equal(hasher.hashed - hashed, 10);
    // IPv6 counts per /64: another address of the same /64 is the same client.
    await assertThrottled(await signup(h, "jay@example.com", from("2001:db8:1:2::8")), 3600);
  },
);

throttleTest(
  "sign-ups from loopback (every hop of the local platform) are not counted by default",
  async (h) => {
    await signUpTimes(h, 12, from("127.0.0.1"));
    await signUpTimes(h, 12, from("::1"));
    const rows = await h.sql.query<{ key: string }>`select key from auth_login_failures where key like 'signup:%'`;
    assert.deepEqual(rows, []);
  },
);

throttleTest(
  "lower limits and windows set on the module apply, and loopback is counted when asked",
  async (h) => {
    await signUpTimes(h, 2, from("127.0.0.1"));
    await assertThrottled(await signup(h, "kai@example.com", from("127.0.0.1")), 60);
    h.clock.nowMs += 60_000;
    await signUpTimes(h, 1, from("127.0.0.1"));
  },
  { signupThrottle: { addressSignupsMax: 2, addressWindowMs: 60_000, countLoopback: true } },
);

Deno.test("createAuthModule() refuses sign-up throttle options out of range before touching the database", async () => {
  const untouchable = new Proxy({}, {
    get: () => () => Promise.reject(new Error("the database must not be touched")),
  }) as Sql;
  const bad = [
    [{ addressSignupsMax: 0 }, /signupThrottle\.addressSignupsMax must be an integer from 1 to 1000, got 0/],
    [{ addressSignupsMax: 1.5 }, /signupThrottle\.addressSignupsMax/],
    [{ addressWindowMs: 999 }, /signupThrottle\.addressWindowMs must be an integer from 1000 to 86400000 ms, got 999/],
    [{ countLoopback: "yes" as unknown as boolean }, /signupThrottle\.countLoopback must be a boolean/],
  ] as const;
  for (const [signupThrottle, message] of bad) {
    await assert.rejects(
      createAuthModule({ sql: untouchable, issuer: ISSUER, audience: AUDIENCE, signupThrottle }),
      (error: unknown) => error instanceof RangeError && message.test(error.message),
    );
  }
});
