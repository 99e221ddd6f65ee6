/**
 * The gRPC kit against real grpc-js servers on loopback (port 0). The standard health service doubles
 * as the test service: its `Check` method gets a test implementation where a test needs one.
 */
import assert from "node:assert/strict";
import { rejectsWithProblem } from "../../../shared/testing/assert_problem.ts";
import * as grpc from "@grpc/grpc-js";
import { GrpcStatus, ProblemError } from "../../contracts/problem.ts";
import { PROBLEM_CODE_METADATA, problemCodeOfGrpc } from "../../contracts/grpc_problem.ts";
import { currentTraceContext, newTraceContext, type TraceContext, withTraceContext } from "../../observability/mod.ts";
import {
  backoffMs,
  createGrpcClient,
  createHealthService,
  type GrpcClientOptions,
  type GrpcServer,
  healthClientConstructor,
  startGrpcServer,
  type UnaryHandler,
} from "./mod.ts";

/** grpc-js keeps internal timers (idle, backoff) alive past a test; each test closes what it opened. */
function grpcTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `[grpc] ${name}`, sanitizeOps: false, sanitizeResources: false, fn });
}

const Health = healthClientConstructor();
const FAST_RETRY: GrpcClientOptions["retry"] = { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200 };

function serveCheck(check: UnaryHandler, port = 0): Promise<GrpcServer> {
  return startGrpcServer({ port, services: [{ definition: Health.service, implementation: { Check: check } }] });
}

function kitClient(port: number, overrides: Partial<GrpcClientOptions> = {}) {
  return createGrpcClient(Health, `127.0.0.1:${port}`, { deadlineMs: 2_000, retry: FAST_RETRY, ...overrides });
}

/** A bare grpc-js call, to see exactly what goes over the wire. */
function rawCheck(port: number, service = ""): Promise<grpc.ServiceError> {
  const client = new Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise<grpc.ServiceError>((resolve, reject) => {
    client.Check({ service }, { deadline: Date.now() + 2_000 }, (error: grpc.ServiceError | null) => {
      client.close();
      if (error) resolve(error);
      else reject(new Error("Expected the raw call to fail"));
    });
  });
}

/** A port that was free a moment ago: bind it and let go. */
async function freePort(): Promise<number> {
  const server = await serveCheck(() => ({ status: "SERVING" }));
  await server.close(100);
  return server.port;
}

grpcTest("the caller's trace context arrives in the handler", async () => {
  let seen: TraceContext | undefined;
  const server = await serveCheck(() => {
    seen = currentTraceContext();
    return { status: "SERVING" };
  });
  const client = kitClient(server.port);
  try {
    const caller = newTraceContext("order-42");
    const response = await withTraceContext(caller, () => client.call<{ status: string }>("Check", { service: "" }));
    assert.equal(response.status, "SERVING");
    assert.equal(seen?.traceId, caller.traceId);
    assert.equal(seen?.correlationId, "order-42");
    assert.notEqual(seen?.spanId, caller.spanId, "the server continues the trace in a span of its own");
  } finally {
    client.close();
    await server.close(500);
  }
});

grpcTest(
  "a ProblemError becomes its gRPC status and bv-problem-code, and the same ProblemError on the client",
  async () => {
    let calls = 0;
    const server = await serveCheck(() => {
      calls++;
      throw new ProblemError("COMMON.CONFLICT", `Cannot reserve 5 of "SKU-1": only 3 available`);
    });
    const client = kitClient(server.port);
    try {
      const wire = await rawCheck(server.port);
      assert.equal(wire.code, GrpcStatus.ABORTED);
      assert.equal(wire.details, `Cannot reserve 5 of "SKU-1": only 3 available`);
      assert.deepEqual(wire.metadata.get(PROBLEM_CODE_METADATA), ["COMMON.CONFLICT"]);

      const problem = await rejectsWithProblem(client.call("Check", { service: "" }));
      assert.equal(problem.code, "COMMON.CONFLICT");
      assert.equal(problem.message, `Cannot reserve 5 of "SKU-1": only 3 available`);
      assert.equal(calls, 2, "a non-UNAVAILABLE failure is not retried");
    } finally {
      client.close();
      await server.close(500);
    }
  },
);

grpcTest("a plain Error becomes INTERNAL without leaking its message, and is not retried", async () => {
  let calls = 0;
  const server = await serveCheck(() => {
    calls++;
    throw new Error("password=hunter2 in /srv/secret.conf");
  });
  const client = kitClient(server.port);
  try {
    const wire = await rawCheck(server.port);
    assert.equal(wire.code, GrpcStatus.INTERNAL);
    assert.doesNotMatch(wire.details, /hunter2|secret/);
    assert.match(wire.details, /trace id "[0-9a-f]{32}"/);

    const problem = await rejectsWithProblem(client.call("Check", { service: "" }));
    assert.equal(problem.code, "COMMON.INTERNAL");
    assert.doesNotMatch(problem.message, /hunter2/);
    assert.equal(calls, 2);
  } finally {
    client.close();
    await server.close(500);
  }
});

grpcTest("a call past its deadline fails with COMMON.UPSTREAM_TIMEOUT within the bound, not retried", async () => {
  let release = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let calls = 0;
  const server = await serveCheck(async () => {
    calls++;
    await gate;
    return { status: "SERVING" };
  });
  const client = kitClient(server.port, { deadlineMs: 5_000 });
  try {
    const started = Date.now();
    const problem = await rejectsWithProblem(client.call("Check", { service: "" }, { deadlineMs: 200 }));
    const elapsedMs = Date.now() - started;
    assert.equal(problem.code, "COMMON.UPSTREAM_TIMEOUT");
    assert.match(problem.message, /200 ms/);
    assert.ok(elapsedMs >= 190 && elapsedMs < 1_000, `failed after ${elapsedMs} ms`);
    assert.equal(calls, 1);
  } finally {
    release();
    client.close();
    await server.close(500);
  }
});

grpcTest("UNAVAILABLE is retried: a server that comes up after the first attempt answers the call", async () => {
  const port = await freePort();
  let starting: Promise<GrpcServer> | undefined;
  const failedAttempts: number[] = [];
  const client = kitClient(port, {
    deadlineMs: 3_000,
    retry: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 400 },
    // The server starts during the first backoff, so a later attempt finds it.
    onRetry: (event) => {
      failedAttempts.push(event.attempt);
      starting ??= serveCheck(() => ({ status: "SERVING" }), port);
    },
  });
  try {
    const response = await client.call<{ status: string }>("Check", { service: "" });
    assert.equal(response.status, "SERVING");
    assert.equal(failedAttempts[0], 1, "the first attempt failed and was retried");
  } finally {
    client.close();
    await (await starting)?.close(500);
  }
});

grpcTest(
  "a server that never comes up fails after maxAttempts with COMMON.UPSTREAM_UNAVAILABLE, in bounded time",
  async () => {
    const port = await freePort();
    const failedAttempts: number[] = [];
    const client = kitClient(port, {
      retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100 },
      onRetry: (event) => failedAttempts.push(event.attempt),
    });
    try {
      const started = Date.now();
      const problem = await rejectsWithProblem(client.call("Check", { service: "" }));
      const elapsedMs = Date.now() - started;
      assert.equal(problem.code, "COMMON.UPSTREAM_UNAVAILABLE");
      assert.match(problem.message, /after 3 attempts/);
      assert.deepEqual(failedAttempts, [1, 2]);
      // Two backoffs of at most 50 and 100 ms, plus three refused connects on loopback.
      assert.ok(elapsedMs < 1_500, `gave up after ${elapsedMs} ms`);
    } finally {
      client.close();
    }
  },
);

grpcTest("retries stop at the call's deadline instead of sleeping past it", async () => {
  const port = await freePort();
  const client = kitClient(port, {
    deadlineMs: 300,
    retry: { maxAttempts: 10, baseDelayMs: 200, maxDelayMs: 1_000 },
  });
  try {
    const started = Date.now();
    const problem = await rejectsWithProblem(client.call("Check", { service: "" }));
    assert.equal(problem.code, "COMMON.UPSTREAM_UNAVAILABLE");
    assert.ok(Date.now() - started < 400, `gave up after ${Date.now() - started} ms`);
  } finally {
    client.close();
  }
});

/** A health server in a child process, listening once this resolves; `kill()` is SIGKILL (no GOAWAY). */
async function spawnServer(port: number): Promise<{ port: number; kill: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./_health_server_for_test.ts", import.meta.url).pathname, String(port)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  let killed = false;
  const kill = async () => {
    if (killed) return;
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone: the status below says how it ended.
    }
    const ended = await child.status;
    if (ended.signal !== "SIGKILL") console.error(`test server ended by itself: ${JSON.stringify(ended)}`);
    await child.stdout.cancel().catch(() => {});
  };
  const bound = Number(value?.trim());
  if (!(bound > 0)) {
    await kill();
    throw new Error(`Test server did not report its port, printed "${value}"`);
  }
  return { port: bound, kill };
}

grpcTest("the client keeps working after the server restarts on the same port (denoland/deno#26907)", async () => {
  let server = await spawnServer(0);
  const port = server.port;
  const client = kitClient(port, { deadlineMs: 1_000, retry: { maxAttempts: 5, baseDelayMs: 50, maxDelayMs: 200 } });
  const status = () => client.call<{ status: string }>("Check", { service: "" }).then((r) => r.status);
  try {
    assert.equal(await status(), "SERVING");

    // Down, called while down (a kept channel would sit in grpc-js's reconnect backoff), then back.
    await server.kill();
    // UNAVAILABLE when the close was seen; on Deno also a hang to the deadline or INTERNAL (dead session).
    await rejectsWithProblem(client.call("Check", { service: "" }, { deadlineMs: 300 }));
    server = await spawnServer(port);
    assert.equal(await status(), "SERVING");

    // Killed and back at once, no call in between: the first call may meet the dead session (on Deno it can
    // hang to its deadline or fail INTERNAL instead of UNAVAILABLE); the channel is replaced, the next works.
    await server.kill();
    server = await spawnServer(port);
    await status().catch((error) => assert.ok(error instanceof ProblemError, String(error)));
    for (let i = 0; i < 3; i++) assert.equal(await status(), "SERVING");
  } finally {
    client.close();
    await server.kill();
  }
});

grpcTest("a handler's UNAVAILABLE is retried on the same connection; the channel is kept", async () => {
  const peers: string[] = [];
  let calls = 0;
  const server = await serveCheck((_request, call) => {
    peers.push(call.getPeer());
    if (++calls <= 2) throw new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", "The database is busy; retry");
    return { status: "SERVING" };
  });
  const client = kitClient(server.port);
  try {
    const response = await client.call<{ status: string }>("Check", { service: "" });
    assert.equal(response.status, "SERVING");
    assert.equal(calls, 3, "retried on UNAVAILABLE");
    assert.equal(new Set(peers).size, 1, `one connection for all attempts, got ${peers.join(", ")}`);
  } finally {
    client.close();
    await server.close(500);
  }
});

grpcTest("health Check follows a readiness check that flips, and each check can be asked by name", async () => {
  let databaseUp = true;
  const health = createHealthService({
    database: () => databaseUp ? Promise.resolve() : Promise.reject(new Error("database down")),
    cache: () => Promise.resolve(),
    // Never settles: the timeout must turn it into NOT_SERVING, not a hung probe.
  }, 100);
  const hanging = createHealthService({ broker: () => new Promise<void>(() => {}) }, 100);
  const server = await startGrpcServer({ port: 0, services: [health] });
  const hangingServer = await startGrpcServer({ port: 0, services: [hanging] });
  const client = kitClient(server.port);
  const hangingClient = kitClient(hangingServer.port);
  const check = (service: string) => client.call<{ status: string }>("Check", { service }).then((r) => r.status);
  try {
    assert.equal(await check(""), "SERVING");
    assert.equal(await check("database"), "SERVING");
    databaseUp = false;
    assert.equal(await check(""), "NOT_SERVING");
    assert.equal(await check("database"), "NOT_SERVING");
    assert.equal(await check("cache"), "SERVING");
    databaseUp = true;
    assert.equal(await check(""), "SERVING");

    const started = Date.now();
    const hung = await hangingClient.call<{ status: string }>("Check", { service: "" });
    assert.equal(hung.status, "NOT_SERVING");
    assert.ok(Date.now() - started < 1_000);
  } finally {
    client.close();
    hangingClient.close();
    await server.close(500);
    await hangingServer.close(500);
  }
});

grpcTest("health Check answers NOT_FOUND for an unknown service, and Watch UNIMPLEMENTED", async () => {
  const server = await startGrpcServer({ port: 0, services: [createHealthService({ database: async () => {} }, 100)] });
  const client = kitClient(server.port);
  try {
    const wire = await rawCheck(server.port, "payments");
    assert.equal(wire.code, GrpcStatus.NOT_FOUND);
    const problem = await rejectsWithProblem(client.call("Check", { service: "payments" }));
    assert.equal(problem.code, "COMMON.NOT_FOUND");
    assert.match(problem.message, /"payments"/);

    const watch = new Health(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const status = await new Promise<number>((resolve) => {
      const stream = watch.Watch({ service: "" }, { deadline: Date.now() + 2_000 });
      stream.on("error", (error: grpc.ServiceError) => resolve(error.code));
      stream.on("data", () => resolve(-1));
    });
    watch.close();
    assert.equal(status, GrpcStatus.UNIMPLEMENTED);
  } finally {
    client.close();
    await server.close(500);
  }
});

Deno.test("[grpc] backoff doubles from baseDelayMs, is capped at maxDelayMs and keeps half of it fixed", () => {
  const retry = { maxAttempts: 6, baseDelayMs: 100, maxDelayMs: 1_000 };
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffMs(n, retry, () => 0)), [50, 100, 200, 400, 500]);
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffMs(n, retry, () => 0.999_999)), [100, 200, 400, 800, 1_000]);
});

Deno.test("[grpc] createGrpcClient() rejects unbounded or malformed options at setup", () => {
  const ok = { deadlineMs: 1_000, retry: FAST_RETRY };
  assert.throws(() => createGrpcClient(Health, "127.0.0.1:1", { ...ok, deadlineMs: 0 }), RangeError);
  for (const maxAttempts of [0, 11, 2.5]) {
    assert.throws(
      () => createGrpcClient(Health, "127.0.0.1:1", { ...ok, retry: { ...FAST_RETRY, maxAttempts } }),
      RangeError,
    );
  }
  assert.throws(
    () =>
      createGrpcClient(Health, "127.0.0.1:1", { ...ok, retry: { ...FAST_RETRY, baseDelayMs: 500, maxDelayMs: 100 } }),
    RangeError,
  );
});

grpcTest("GrpcClient.call() names an unknown or streaming method as a programming error", async () => {
  const client = createGrpcClient(Health, "127.0.0.1:1", { deadlineMs: 1_000, retry: FAST_RETRY });
  try {
    await assert.rejects(client.call("Chekc", {}), TypeError);
    await assert.rejects(client.call("Watch", {}), /streaming/);
  } finally {
    client.close();
  }
});

Deno.test("[grpc] problemCodeOfGrpc() lets transport statuses win and otherwise keeps a known server code", () => {
  assert.equal(problemCodeOfGrpc(GrpcStatus.UNAVAILABLE, "COMMON.CONFLICT"), "COMMON.UPSTREAM_UNAVAILABLE");
  assert.equal(problemCodeOfGrpc(GrpcStatus.DEADLINE_EXCEEDED), "COMMON.UPSTREAM_TIMEOUT");
  assert.equal(problemCodeOfGrpc(GrpcStatus.ABORTED, "COMMON.CONFLICT"), "COMMON.CONFLICT");
  assert.equal(problemCodeOfGrpc(GrpcStatus.NOT_FOUND, "SOMETHING.NEWER"), "COMMON.INTERNAL");
  assert.equal(problemCodeOfGrpc(GrpcStatus.NOT_FOUND), "COMMON.INTERNAL");
});
