/**
 * @module
 * Test support: answers GraphQL requests on its own thread ({@linkcode postWithDeadline} in `_fixture_for_test.ts`),
 * so a test can give up on a query that blocks the event loop, which no timer on the same thread could do. The
 * routes run without a database: every statement is refused (a query that needs SQL answers a masked error).
 */
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { type GraphqlReply, post } from "./_fixture_for_test.ts";
import { createGraphqlRoutes } from "./mod.ts";

export interface WorkerRequest {
  readonly query: string;
  readonly variables?: Record<string, unknown>;
}
export type WorkerReply = GraphqlReply & { readonly elapsedMs: number };

const refused = () => Promise.reject(new Error("no database in the request worker"));
const noSql = { query: refused, exec: refused, transaction: refused, ping: refused, close: () => Promise.resolve() };

/** The worker's global scope, typed for the two members used (the lib is the window one here). */
const scope = globalThis as unknown as {
  onmessage: (event: MessageEvent<WorkerRequest>) => void;
  postMessage(message: WorkerReply): void;
};
const app = createGraphqlRoutes({ sql: noSql as unknown as Sql, cache: createMemoryCache() });

scope.onmessage = async (event) => {
  const started = performance.now();
  const reply = await post(app, event.data.query, event.data.variables);
  scope.postMessage({ ...reply, elapsedMs: performance.now() - started });
};
