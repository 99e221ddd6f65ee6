/**
 * @module
 * What a GraphQL client may see of a failure. Request errors (syntax, validation, limits) carry a
 * `GRAPHQL.*` code; a domain `ProblemError` keeps its problem code and its detail (written for users); a SQL
 * failure a retry may pass is `COMMON.UPSTREAM_UNAVAILABLE`, as over HTTP and gRPC; any other error is masked:
 * a generic message with the trace id, the real one only in the log. Nothing here echoes a table, column or
 * SQL text.
 */
import { GraphQLError } from "graphql";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { currentTraceId, log, newTraceContext } from "../../../shared/observability/mod.ts";
import { logEntryOfSqlFailure, problemOfSqlFailure } from "../../../shared/ports/sql_problem.ts";

/** `extensions.code` of request-level errors. */
export const GraphqlErrorCode = Object.freeze({
  /** No query, unreadable JSON or variables, unsupported content type or operation. */
  BAD_REQUEST: "GRAPHQL.BAD_REQUEST",
  /** The query is not GraphQL. */
  PARSE_FAILED: "GRAPHQL.PARSE_FAILED",
  /** The query does not fit the schema (unknown field, wrong argument type, bad variable). */
  VALIDATION_FAILED: "GRAPHQL.VALIDATION_FAILED",
  /** A limit refused the query: size, tokens, depth, aliases or cost. */
  QUERY_REJECTED: "GRAPHQL.QUERY_REJECTED",
  /** The query asks `__schema` or `__type`; the schema is published as SDL instead. */
  INTROSPECTION_DISABLED: "GRAPHQL.INTROSPECTION_DISABLED",
  METHOD_NOT_ALLOWED: "GRAPHQL.METHOD_NOT_ALLOWED",
  PAYLOAD_TOO_LARGE: "GRAPHQL.PAYLOAD_TOO_LARGE",
  /** Something failed on our side; the message carries the trace id to quote. */
  INTERNAL: "GRAPHQL.INTERNAL",
});

export type GraphqlErrorCode = typeof GraphqlErrorCode[keyof typeof GraphqlErrorCode];

/** A request-level error with its code. */
export function requestError(code: GraphqlErrorCode, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code } });
}

/** A resolver failure as the client may see it, and whether it was the client's input. */
export function clientErrorOf(error: unknown): { readonly error: GraphQLError; readonly badInput: boolean } {
  if (error instanceof GraphQLError && error.extensions?.code !== undefined) return { error, badInput: false };
  // A SQL failure a retry may pass (lock not available, statement timeout, deadlock…) is the problem an HTTP
  // request gets for it, COMMON.UPSTREAM_UNAVAILABLE, so the client retries instead of reporting a bug.
  const unavailable = problemOfSqlFailure(error);
  if (unavailable) {
    const { level, fields } = logEntryOfSqlFailure(error);
    log[level]("graphql resolver failed on a database failure that a retry may pass", fields);
  }
  const problem = unavailable ?? error;
  if (problem instanceof ProblemError) {
    const traceId = currentTraceId();
    return {
      error: new GraphQLError(problem.message, {
        extensions: { code: problem.code, ...(traceId ? { traceId } : {}) },
      }),
      badInput: problem.status < 500,
    };
  }
  return { error: internalError(error), badInput: false };
}

/** Logs `error` and answers a message that gives nothing away but the trace id. */
export function internalError(error: unknown): GraphQLError {
  const traceId = currentTraceId() ?? newTraceContext().traceId;
  log.error("graphql resolver failed", { traceId, error: String(error), stack: (error as Error)?.stack });
  return new GraphQLError(
    `An unexpected error occurred; quote trace id "${traceId}" if you report it`,
    { extensions: { code: GraphqlErrorCode.INTERNAL, traceId } },
  );
}
