import assert from "node:assert/strict";
import { Hono } from "hono";
import { z } from "zod";
import { ProblemError } from "../contracts/problem.ts";
import { GrpcStatus, grpcStatusOf, problemCodes } from "../contracts/problem.ts";
import { installProblemHandlers } from "./problem_response.ts";
import { readJson } from "./json_body.ts";

function app(): Hono {
  const hono = new Hono();
  installProblemHandlers(hono);
  const schema = z.strictObject({ qty: z.number().int().min(1).max(1000) });
  hono.post("/echo", async (c) => c.json(await readJson(c, schema)));
  hono.get("/conflict", () => {
    throw new ProblemError("COMMON.CONFLICT", `Order "o-1" is PAID and cannot be canceled`);
  });
  hono.get("/boom", () => {
    throw new Error("secret internal detail");
  });
  return hono;
}

async function problem(response: Response) {
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const body = await response.json();
  assert.equal(body.status, response.status);
  assert.match(body.type, /^urn:bitvelocity:problem:/);
  return body;
}

Deno.test("readJson() turns every kind of bad body into a 4xx problem with a stable code", async () => {
  const cases: [string, RequestInit, number, string][] = [
    ["malformed", { body: "{", headers: { "content-type": "application/json" } }, 400, "COMMON.MALFORMED_JSON"],
    [
      "wrong type",
      { body: '{"qty":"2"}', headers: { "content-type": "application/json" } },
      400,
      "COMMON.VALIDATION_FAILED",
    ],
    [
      "unknown field",
      { body: '{"qty":2,"x":1}', headers: { "content-type": "application/json" } },
      400,
      "COMMON.VALIDATION_FAILED",
    ],
    [
      "negative",
      { body: '{"qty":-1}', headers: { "content-type": "application/json" } },
      400,
      "COMMON.VALIDATION_FAILED",
    ],
    ["not json", { body: "qty=1", headers: { "content-type": "text/plain" } }, 415, "COMMON.UNSUPPORTED_MEDIA_TYPE"],
    [
      "too large",
      {
        body: JSON.stringify({ qty: 1, pad: "x".repeat(1024 * 1024) }),
        headers: { "content-type": "application/json" },
      },
      413,
      "COMMON.PAYLOAD_TOO_LARGE",
    ],
  ];
  for (const [name, init, status, code] of cases) {
    const response = await app().request("/echo", { method: "POST", ...init });
    assert.equal(response.status, status, name);
    assert.equal((await problem(response)).code, code, name);
  }
  const ok = await app().request("/echo", {
    method: "POST",
    body: '{"qty":2}',
    headers: { "content-type": "application/json" },
  });
  assert.deepEqual(await ok.json(), { qty: 2 });
});

Deno.test("thrown ProblemErrors keep their code; unknown errors become COMMON.INTERNAL without leaking", async () => {
  const conflict = await app().request("/conflict");
  assert.equal(conflict.status, 409);
  assert.equal((await problem(conflict)).detail, `Order "o-1" is PAID and cannot be canceled`);
  const boom = await app().request("/boom");
  assert.equal(boom.status, 500);
  const body = await problem(boom);
  assert.equal(body.code, "COMMON.INTERNAL");
  assert.ok(!JSON.stringify(body).includes("secret"));
  const missing = await app().request("/nope");
  assert.equal((await problem(missing)).code, "COMMON.NOT_FOUND");
});

Deno.test("every problem code maps to exactly one HTTP status and a gRPC status", () => {
  for (const [code, status] of Object.entries(problemCodes)) {
    const grpc = grpcStatusOf(code as keyof typeof problemCodes);
    assert.ok(grpc > 0 && grpc <= 16, code);
    if (status === 401) assert.equal(grpc, GrpcStatus.UNAUTHENTICATED, code);
    if (status === 404) assert.equal(grpc, GrpcStatus.NOT_FOUND, code);
    if (status === 400) assert.equal(grpc, GrpcStatus.INVALID_ARGUMENT, code);
    if (status === 429) assert.equal(grpc, GrpcStatus.RESOURCE_EXHAUSTED, code);
    if (status === 503) assert.equal(grpc, GrpcStatus.UNAVAILABLE, code);
  }
});
