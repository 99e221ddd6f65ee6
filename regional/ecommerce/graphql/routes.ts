/**
 * @module
 * `GET|POST /graphql`: the aggregated product read model, public (reads only, no auth). Requests pass
 * {@linkcode readGraphqlParams} and {@linkcode checkGraphqlRequest} first; only a query that passed every
 * check reaches `@hono/graphql-server`, which then only executes. Why the guard runs in front of it rather
 * than as its `validationRules`: graphql-server answers several bad inputs with a 500 (variables that do not
 * coerce, operations the schema lacks) with the raw message, logs a stack for each syntax error, and cannot
 * hide suggestions. The price is parsing and validating an accepted query twice (≤ 10 KiB, microseconds).
 */
import { graphqlServer } from "@hono/graphql-server";
import { Hono } from "hono";
import type { GraphQLError } from "graphql";
import type { Cache } from "../../../shared/ports/cache.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { log } from "../../../shared/observability/mod.ts";
import { GraphqlErrorCode, internalError, requestError } from "./errors.ts";
import { checkGraphqlRequest, GRAPHQL_SCHEMA_PATH } from "./query_guard.ts";
import { readGraphqlParams } from "./request_params.ts";
import { createRequestState, type GraphqlEnv } from "./resolvers.ts";
import { graphqlSchema, graphqlSchemaSdl } from "./schema.ts";

export const GRAPHQL_PATH = "/graphql";

export interface GraphqlRoutesDeps {
  readonly sql: Sql;
  readonly cache: Cache;
}

function errorsBody(errors: readonly GraphQLError[]): { errors: unknown[] } {
  return { errors: errors.map((e) => e.toJSON()) };
}

/**
 * The GraphQL endpoint and its schema as SDL (`GET /graphql/schema.graphql`, public: introspection is refused), to
 * mount on a service app (`app.route("/", createGraphqlRoutes(deps))`).
 */
export function createGraphqlRoutes(deps: GraphqlRoutesDeps): Hono {
  if (!deps?.sql || !deps?.cache) throw new TypeError('createGraphqlRoutes() requires "sql" and "cache"');
  const app = new Hono<GraphqlEnv>();
  const execute = graphqlServer<GraphqlEnv>({ schema: graphqlSchema, graphiql: false });

  app.on(["GET", "POST"], GRAPHQL_PATH, async (c, next) => {
    const read = await readGraphqlParams(c.req.raw);
    if (!read.ok) return c.json(errorsBody([read.error]), read.status as 400, read.headers);
    const verdict = checkGraphqlRequest(graphqlSchema, read.params);
    if (!verdict.ok) return c.json(errorsBody(verdict.errors), verdict.status);
    const state = createRequestState(deps);
    c.set("graphqlRequest", state);
    // graphql-server reads URL parameters before the body: hand it the checked parameters alone, on a
    // URL without a query string, so it can only run what was checked.
    const url = new URL(c.req.url);
    url.search = "";
    c.req.raw = new Request(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(read.params),
    });
    await next();
    if (c.res.status >= 500) {
      // Not expected after the guard; if graphql-server still fails, its message stays in the log.
      log.error("graphql execution answered a server error", { status: c.res.status, body: await c.res.text() });
      c.res = Response.json(errorsBody([internalError("graphql execution failed")]), { status: 500 });
    } else if (state.badInput && c.res.status === 200) {
      c.res = new Response(c.res.body, { status: 400, headers: c.res.headers });
    }
    return undefined;
  }, execute);

  app.get(GRAPHQL_SCHEMA_PATH, (c) => {
    // The schema changes only with a deployment.
    c.header("cache-control", "public, max-age=300");
    return c.body(graphqlSchemaSdl, 200, { "content-type": "text/plain; charset=utf-8" });
  });

  app.all(GRAPHQL_PATH, (c) =>
    c.json(
      errorsBody([requestError(GraphqlErrorCode.METHOD_NOT_ALLOWED, "Use GET or POST for GraphQL queries")]),
      405,
      { Allow: "GET, POST" },
    ));
  return app as unknown as Hono;
}
