import assert from "node:assert/strict";
import { ProblemError } from "../contracts/problem.ts";
import { errorToResponse } from "../http/problem_response.ts";
import { createSqlPermits } from "./sql_permits.ts";

/** A promise and the function that resolves it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

async function rejectsUnavailable(promise: Promise<unknown>): Promise<ProblemError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return error instanceof ProblemError && error.code === "COMMON.UPSTREAM_UNAVAILABLE";
  });
  return caught as ProblemError;
}

Deno.test("createSqlPermits() runs at most `connections` callers at once and serves waiters in arrival order", async () => {
  const permits = createSqlPermits("Test", 2, { acquireTimeoutMs: 60_000, maxWaiting: 10 });
  const held = gate();
  const order: string[] = [];
  let running = 0;
  let runningMax = 0;
  const work = (name: string) => async () => {
    running++;
    runningMax = Math.max(runningMax, running);
    order.push(name);
    await held.promise;
    running--;
  };
  const all = ["a", "b", "c", "d", "e"].map((name) => permits.run(work(name)));
  await Promise.resolve();
  assert.deepEqual(order, ["a", "b"], "two run, three wait");
  held.open();
  await Promise.all(all);
  assert.deepEqual(order, ["a", "b", "c", "d", "e"]);
  assert.equal(runningMax, 2);
});

Deno.test("createSqlPermits() fails a caller after acquireTimeoutMs and never runs its work, even once a permit frees", async () => {
  const permits = createSqlPermits("Test", 1, { acquireTimeoutMs: 20, maxWaiting: 10 });
  const held = gate();
  const holder = permits.run(() => held.promise);
  let ran = false;
  const error = await rejectsUnavailable(permits.run(() => Promise.resolve(ran = true)));
  assert.match(error.message, /^No Test connection became free within 20 ms/);
  held.open();
  await holder;
  assert.equal(await permits.run(() => Promise.resolve("next")), "next", "the permit went to the next caller");
  assert.equal(ran, false, "the caller that gave up never ran");
});

Deno.test("createSqlPermits() refuses a caller at once when maxWaiting callers already wait", async () => {
  const permits = createSqlPermits("Test", 1, { acquireTimeoutMs: 60_000, maxWaiting: 1 });
  const held = gate();
  const holder = permits.run(() => held.promise);
  const waiter = permits.run(() => Promise.resolve("served"));
  let ran = false;
  const error = await rejectsUnavailable(permits.run(() => Promise.resolve(ran = true)));
  assert.match(error.message, /^Test is saturated: all 1 connections are in use and 1 callers already wait/);
  held.open();
  await holder;
  assert.equal(await waiter, "served", "the caller already waiting is served");
  assert.equal(ran, false);
});

Deno.test("createSqlPermits() with maxWaiting 0 refuses every caller that finds no free permit", async () => {
  const permits = createSqlPermits("Test", 1, { acquireTimeoutMs: 60_000, maxWaiting: 0 });
  const held = gate();
  const holder = permits.run(() => held.promise);
  await rejectsUnavailable(permits.run(() => Promise.resolve()));
  held.open();
  await holder;
  await permits.run(() => Promise.resolve());
});

Deno.test("createSqlPermits() releases the permit of a caller whose work fails", async () => {
  const permits = createSqlPermits("Test", 1, { acquireTimeoutMs: 60_000, maxWaiting: 1 });
  await assert.rejects(permits.run(() => Promise.reject(new Error("boom"))), { message: "boom" });
  assert.equal(await permits.run(() => Promise.resolve(1)), 1);
});

Deno.test("createSqlPermits() run(work, acquireTimeoutMs) waits no longer than the shorter of both bounds", async () => {
  const permits = createSqlPermits("Test", 1, { acquireTimeoutMs: 60_000, maxWaiting: 1 });
  const held = gate();
  const holder = permits.run(() => held.promise);
  const error = await rejectsUnavailable(permits.run(() => Promise.resolve(), 20));
  assert.match(error.message, /within 20 ms/);
  held.open();
  await holder;
});

Deno.test("createSqlPermits() whenIdle() resolves once running and queued work has settled", async () => {
  const permits = createSqlPermits("Test", 1, { acquireTimeoutMs: 60_000, maxWaiting: 5 });
  await permits.whenIdle();
  const held = gate();
  const done: string[] = [];
  const first = permits.run(async () => {
    await held.promise;
    done.push("first");
  });
  const second = permits.run(() => Promise.resolve(done.push("second")));
  const idle = permits.whenIdle().then(() => done.push("idle"));
  held.open();
  await Promise.all([first, second, idle]);
  assert.deepEqual(done, ["first", "second", "idle"]);
});

Deno.test("createSqlPermits() refusal renders as HTTP 503 problem+json with Retry-After", async () => {
  const permits = createSqlPermits("PostgreSQL", 1, { acquireTimeoutMs: 60_000, maxWaiting: 0 });
  const held = gate();
  const holder = permits.run(() => held.promise);
  const error = await rejectsUnavailable(permits.run(() => Promise.resolve()));
  held.open();
  await holder;
  const response = errorToResponse(error, "/api/v1/orders");
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  assert.equal(response.headers.get("retry-after"), "1");
  const body = await response.json();
  assert.equal(body.code, "COMMON.UPSTREAM_UNAVAILABLE");
  assert.match(body.detail, /PostgreSQL is saturated/);
});

Deno.test("createSqlPermits() rejects bounds it cannot honour with a RangeError", () => {
  assert.throws(() => createSqlPermits("Test", 0), RangeError);
  assert.throws(() => createSqlPermits("Test", 1, { acquireTimeoutMs: 0 }), RangeError);
  assert.throws(() => createSqlPermits("Test", 1, { acquireTimeoutMs: Infinity }), RangeError);
  assert.throws(() => createSqlPermits("Test", 1, { maxWaiting: -1 }), RangeError);
  assert.throws(() => createSqlPermits("Test", 1, { maxWaiting: 1.5 }), /maxWaiting is "1.5"/);
});

Deno.test("createSqlPermits() gives an urgent caller (a readiness ping) the next permit ahead of queued callers", async () => {
  const permits = createSqlPermits("test", 1, { acquireTimeoutMs: 2_000, maxWaiting: 0 });
  const order: string[] = [];
  const held = gate();
  const holder = permits.run(() => held.promise);
  // maxWaiting 0: an ordinary caller is refused at once, while an urgent one waits in its own lane.
  await assert.rejects(permits.run(() => Promise.resolve()), ProblemError);
  const busy = createSqlPermits("busy", 1, { acquireTimeoutMs: 2_000 });
  const busyHeld = gate();
  const busyHolder = busy.run(() => busyHeld.promise);
  const queued = [1, 2, 3].map((i) => busy.run(() => Promise.resolve(void order.push(`request ${i}`))));
  const ping = busy.run(() => Promise.resolve(void order.push("ping")), 1_000, { urgent: true });
  const urgent = permits.run(() => Promise.resolve(void order.push("urgent on a full queue")), 1_000, { urgent: true });
  busyHeld.open();
  held.open();
  await Promise.all([holder, busyHolder, ping, urgent, ...queued]);
  assert.deepEqual(order.filter((o) => o !== "urgent on a full queue"), [
    "ping",
    "request 1",
    "request 2",
    "request 3",
  ]);
  assert.ok(order.includes("urgent on a full queue"));
});
