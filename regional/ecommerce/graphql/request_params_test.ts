import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { createServiceApp } from "../../../shared/runtime/mod.ts";
import { replyOf } from "./_fixture_for_test.ts";
import { createGraphqlRoutes, GraphqlErrorCode } from "./mod.ts";

// No query here gets as far as SQL.
const refused = () => Promise.reject(new Error("no database in these tests"));
const noSql = { query: refused, exec: refused, transaction: refused, ping: refused, close: refused } as unknown as Sql;

/** The GraphQL routes mounted as in production: on a service app, whose middleware bounds every request body. */
function serviceApp(bounds: { bodyBytesMax?: number; bodyIdleTimeoutMs?: number } = {}) {
  const app = createServiceApp({ name: "ecommerce-test", checks: {}, ...bounds });
  app.route("/", createGraphqlRoutes({ sql: noSql, cache: createMemoryCache() }));
  return app;
}

/** A client body that sends `chunks`, then stalls for ever (`"stall"`) or fails (`"fail"`, a connection reset). */
function clientBody(chunks: string[], then: "stall" | "fail"): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at < chunks.length) return controller.enqueue(new TextEncoder().encode(chunks[at++]));
      if (then === "fail") return controller.error(new Error("connection reset"));
      return new Promise<void>(() => {});
    },
  }, { highWaterMark: 0 });
}

function postBody(body: BodyInit, headers: Record<string, string> = {}): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
    duplex: "half",
  } as RequestInit;
}

const QUERY_START = '{"query": "{ products { nodes { id } } }", "variables": {"pad": "';

Deno.test("a request body cut off by the service app's bounds answers GraphQL errors, not problem+json", async () => {
  const stalled = await replyOf(
    await serviceApp({ bodyIdleTimeoutMs: 50 }).request("/graphql", postBody(clientBody([QUERY_START], "stall"))),
  );
  assert.equal(stalled.status, 408, stalled.text);
  assert.equal(stalled.contentType, "application/json");
  assert.equal(stalled.body.errors[0].extensions.code, "COMMON.REQUEST_TIMEOUT");
  assert.match(stalled.body.errors[0].message, /No part of the request body arrived for 50 ms/);

  const gone = await replyOf(await serviceApp().request("/graphql", postBody(clientBody([QUERY_START], "fail"))));
  assert.equal(gone.status, 400, gone.text);
  assert.equal(gone.contentType, "application/json");
  assert.equal(gone.body.errors[0].extensions.code, "COMMON.REQUEST_INCOMPLETE");

  // A service bound below the GraphQL one (64 KiB) is this API's 413 all the same.
  const large = await replyOf(
    await serviceApp({ bodyBytesMax: 1024 }).request(
      "/graphql",
      postBody(clientBody([QUERY_START, "x".repeat(2048)], "stall")),
    ),
  );
  assert.equal(large.status, 413, large.text);
  assert.equal(large.contentType, "application/json");
  assert.equal(large.body.errors[0].extensions.code, GraphqlErrorCode.PAYLOAD_TOO_LARGE);
});

Deno.test("answers given before the body was read to its end say Connection: close", async () => {
  const app = serviceApp({ bodyIdleTimeoutMs: 50 });
  const stalled = await app.request("/graphql", postBody(clientBody([QUERY_START], "stall")));
  assert.equal(stalled.status, 408);
  assert.equal(stalled.headers.get("connection"), "close");
  await stalled.body?.cancel();
  const overGraphqlBound = await app.request(
    "/graphql",
    postBody(clientBody([QUERY_START, "x".repeat(70_000)], "stall")),
  );
  assert.equal(overGraphqlBound.status, 413);
  assert.equal(overGraphqlBound.headers.get("connection"), "close");
  assert.equal((await overGraphqlBound.json()).errors[0].extensions.code, GraphqlErrorCode.PAYLOAD_TOO_LARGE);
});

Deno.test("without the service app's bounds, a client stream that fails is a 400 GraphQL error", async () => {
  const routes = createGraphqlRoutes({ sql: noSql, cache: createMemoryCache() });
  const reply = await replyOf(await routes.request("/graphql", postBody(clientBody([QUERY_START], "fail"))));
  assert.equal(reply.status, 400, reply.text);
  assert.equal(reply.body.errors[0].extensions.code, "COMMON.REQUEST_INCOMPLETE");
  assert.match(reply.body.errors[0].message, /could not be read to its end/);
});

Deno.test("a declared Content-Length over 1 MiB is refused before the route, as problem+json", async () => {
  // As the README says: the service app refuses it before any route runs, so it is not a GraphQL answer.
  const reply = await replyOf(
    await serviceApp().request(
      "/graphql",
      postBody(clientBody([QUERY_START], "stall"), { "content-length": String(2 * 1024 * 1024) }),
    ),
  );
  assert.equal(reply.status, 413, reply.text);
  assert.equal(reply.contentType, "application/problem+json");
  assert.equal(reply.body.code, "COMMON.PAYLOAD_TOO_LARGE");
});
