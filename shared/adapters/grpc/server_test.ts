/**
 * What the server wrapper guards beyond grpc_test.ts: requests that do not decode, requests past a service's
 * size bound, a service's own status for a code, a SQL failure a retry may pass, the call's deadline and
 * cancellation reaching the handler, and the warning for a bind address beyond loopback. Real grpc-js servers on
 * port 0; health is the test service.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { GrpcStatus, ProblemError } from "../../contracts/problem.ts";
import { PROBLEM_CODE_METADATA } from "../../contracts/grpc_problem.ts";
import { SqlError } from "../../ports/sql_values.ts";
import { type GrpcCallBound, type GrpcServiceBinding, healthClientConstructor, startGrpcServer } from "./mod.ts";

function grpcTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `[grpc] ${name}`, sanitizeOps: false, sanitizeResources: false, fn });
}

const Health = healthClientConstructor();
const CHECK_PATH = "/grpc.health.v1.Health/Check";

function healthBinding(overrides: Partial<GrpcServiceBinding> = {}): GrpcServiceBinding {
  return { definition: Health.service, implementation: { Check: () => ({ status: "SERVING" }) }, ...overrides };
}

/** Sends `bytes` as the request body of `Check`, unencoded, and resolves with the failure. */
function sendBytes(port: number, bytes: Uint8Array): Promise<grpc.ServiceError> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      CHECK_PATH,
      (body: Uint8Array) => Buffer.from(body),
      (response: Buffer) => response,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + 2_000 },
      (error) => {
        client.close();
        if (error) resolve(error);
        else reject(new Error("Expected the call to fail"));
      },
    );
  });
}

grpcTest("a request that is no valid protobuf answers INVALID_ARGUMENT with COMMON.VALIDATION_FAILED", async () => {
  let calls = 0;
  const server = await startGrpcServer({
    port: 0,
    services: [healthBinding({ implementation: { Check: () => (calls++, { status: "SERVING" }) } })],
  });
  try {
    // A lone tag; an embedded message of 16 bytes of which 1 came; a length varint cut off. (A string cut
    // short, `0a 10 61`, is no error: protobufjs clamps strings read from a Buffer and decodes "a".)
    for (const bytes of [[0x0f], [0x12, 0x10, 0x0a], [0x0a, 0x80]]) {
      const wire = await sendBytes(server.port, new Uint8Array(bytes));
      assert.equal(wire.code, GrpcStatus.INVALID_ARGUMENT, wire.details);
      assert.deepEqual(wire.metadata.get(PROBLEM_CODE_METADATA), ["COMMON.VALIDATION_FAILED"]);
      assert.match(wire.details, /not a valid protobuf message/);
    }
    assert.equal(calls, 0, "the handler never sees an undecodable request");
  } finally {
    await server.close(500);
  }
});

grpcTest("a request larger than every service's requestBytesMax is RESOURCE_EXHAUSTED, undecoded", async () => {
  let calls = 0;
  const server = await startGrpcServer({
    port: 0,
    services: [healthBinding({
      requestBytesMax: 1024,
      implementation: { Check: () => (calls++, { status: "SERVING" }) },
    })],
  });
  try {
    // `0a 80 10` + 2048 bytes: field 1 (service), a 2 KiB string.
    const oversized = new Uint8Array([0x0a, 0x80, 0x10, ...new Uint8Array(2048).fill(0x61)]);
    const wire = await sendBytes(server.port, oversized);
    assert.equal(wire.code, GrpcStatus.RESOURCE_EXHAUSTED, wire.details);
    assert.equal(calls, 0);
  } finally {
    await server.close(500);
  }
});

grpcTest("a service's statusOverrides choose the gRPC status of a code; the problem code is kept", async () => {
  const conflict = () => {
    throw new ProblemError("COMMON.CONFLICT", "Reservation is released; reserve again with a new id");
  };
  const server = await startGrpcServer({
    port: 0,
    services: [healthBinding({
      implementation: { Check: conflict },
      statusOverrides: { "COMMON.CONFLICT": GrpcStatus.FAILED_PRECONDITION },
    })],
  });
  try {
    const wire = await sendBytes(server.port, new Uint8Array());
    assert.equal(wire.code, GrpcStatus.FAILED_PRECONDITION);
    assert.deepEqual(wire.metadata.get(PROBLEM_CODE_METADATA), ["COMMON.CONFLICT"]);
  } finally {
    await server.close(500);
  }
});

grpcTest("a SQL failure a retry may pass (55P03) is UNAVAILABLE with COMMON.UPSTREAM_UNAVAILABLE", async () => {
  const failing = (code: string) => () => {
    throw new SqlError(`could not obtain lock on row in relation "inventory_stock" (${code})`, code);
  };
  const quiet = console.error;
  console.error = () => {};
  const servers = await Promise.all(
    ["55P03", "53100"].map((code) =>
      startGrpcServer({ port: 0, services: [healthBinding({ implementation: { Check: failing(code) } })] })
    ),
  );
  try {
    const [locked, diskFull] = await Promise.all(servers.map((server) => sendBytes(server.port, new Uint8Array())));
    assert.equal(locked.code, GrpcStatus.UNAVAILABLE, locked.details);
    assert.deepEqual(locked.metadata.get(PROBLEM_CODE_METADATA), ["COMMON.UPSTREAM_UNAVAILABLE"]);
    assert.doesNotMatch(locked.details, /inventory_stock|55P03/, "the driver's message is not leaked");
    // A failure that needs an operator is no reason to retry: it stays INTERNAL, as it stays a 500 over HTTP.
    assert.equal(diskFull.code, GrpcStatus.INTERNAL, diskFull.details);
    assert.deepEqual(diskFull.metadata.get(PROBLEM_CODE_METADATA), ["COMMON.INTERNAL"]);
  } finally {
    console.error = quiet;
    await Promise.all(servers.map((server) => server.close(500)));
  }
});

grpcTest("a handler gets its call's deadline and a signal that aborts when the caller stops waiting", async () => {
  let seen: GrpcCallBound | undefined;
  let aborted!: () => void;
  const abortSeen = new Promise<void>((resolve) => aborted = resolve);
  const server = await startGrpcServer({
    port: 0,
    services: [healthBinding({
      implementation: {
        Check: (_request: unknown, _call: unknown, bound: GrpcCallBound) => {
          seen = bound;
          bound.signal.addEventListener("abort", () => aborted());
          return new Promise(() => {}); // Never answers: only the deadline ends this call.
        },
      },
    })],
  });
  const client = new Health(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  try {
    const sentAt = Date.now();
    const failure = await new Promise<grpc.ServiceError>((resolve) => {
      client.Check({ service: "" }, { deadline: sentAt + 300 }, (error: grpc.ServiceError) => resolve(error));
    });
    assert.equal(failure.code, GrpcStatus.DEADLINE_EXCEEDED);
    await abortSeen;
    assert.ok(seen?.signal.aborted);
    const deadlineAt = seen?.deadlineAt ?? NaN;
    // The server derives its deadline from `grpc-timeout`, so it is within a few ms of the client's.
    assert.ok(Math.abs(deadlineAt - (sentAt + 300)) < 200, `deadlineAt ${deadlineAt - sentAt} ms after sending`);
  } finally {
    client.close();
    await server.close(500);
  }
});

grpcTest("a server bound beyond loopback warns at start that it is plaintext and unauthenticated", async () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: unknown) => void lines.push(String(line));
  try {
    for (const host of ["127.0.0.1", "0.0.0.0"]) {
      const server = await startGrpcServer({ host, port: 0, services: [healthBinding()] });
      await server.close(500);
    }
  } finally {
    console.error = original;
  }
  const warnings = lines.map((line) => JSON.parse(line)).filter((entry) => /unauthenticated/.test(entry.msg));
  assert.equal(warnings.length, 1, "only the wildcard bind warns");
  assert.equal(warnings[0].level, "warn");
  assert.match(warnings[0].address, /^0\.0\.0\.0:\d+$/);
});
