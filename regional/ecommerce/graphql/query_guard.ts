/**
 * @module
 * Everything a query must pass before it runs: size, token count, syntax, the schema (with field
 * suggestions hidden, so the API cannot be mapped by typos), graphql-armor's depth, alias and cost limits,
 * one query operation, and its variables. A refusal is a 400 with GraphQL errors, each with an
 * `extensions.code`; it never reaches a resolver.
 */
import { costLimitRule } from "@escape.tech/graphql-armor-cost-limit";
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import {
  type DocumentNode,
  getOperationAST,
  getVariableValues,
  GraphQLError,
  type GraphQLSchema,
  parse,
  Source,
  specifiedRules,
  validate,
  type ValidationContext,
  type ValidationRule,
} from "graphql";
import { GraphqlErrorCode, requestError } from "./errors.ts";
import type { GraphqlParams } from "./request_params.ts";

/** Limits of every query. */
export const GRAPHQL_LIMITS = Object.freeze({
  /** Bytes of query text (UTF-8). */
  QUERY_BYTES_MAX: 10 * 1024,
  /** Lexical tokens the parser reads before giving up; bounds parse time whatever the text. */
  TOKENS_MAX: 2_000,
  DEPTH_MAX: 6,
  ALIASES_MAX: 10,
  /** graphql-armor's cost: objects 2, scalars 1, ×1.5 per level, × a literal `first`. */
  COST_MAX: 5_000,
  /** Validation stops after this many errors (each one costs work to find and to send). */
  VALIDATION_ERRORS_MAX: 20,
});

export type GuardResult =
  | { readonly ok: true; readonly document: DocumentNode }
  | { readonly ok: false; readonly status: 400; readonly errors: readonly GraphQLError[] };

/** armor's message ("… limit of 6 exceeded, found 7.") reworded with what to do; the number is kept. */
function limitReporter(explain: (found: string) => string) {
  return (context: ValidationContext | null, error: GraphQLError): void => {
    const found = /found (\d+(?:\.\d+)?)/.exec(error.message)?.[1] ?? "too high";
    context?.reportError(requestError(GraphqlErrorCode.QUERY_REJECTED, explain(found)));
  };
}

/** armor's rules report through `reportError` instead of throwing, which would escape `validate`. */
const limitRules: readonly ValidationRule[] = [
  maxDepthRule({
    n: GRAPHQL_LIMITS.DEPTH_MAX,
    propagateOnRejection: false,
    onReject: [
      limitReporter((found) =>
        `Query depth ${found} exceeds the limit of ${GRAPHQL_LIMITS.DEPTH_MAX}; select fewer nested fields`
      ),
    ],
  }),
  maxAliasesRule({
    n: GRAPHQL_LIMITS.ALIASES_MAX,
    propagateOnRejection: false,
    onReject: [
      limitReporter((found) =>
        `Query uses ${found} aliases, over the limit of ${GRAPHQL_LIMITS.ALIASES_MAX}; split it into several queries`
      ),
    ],
  }),
  costLimitRule({
    maxCost: GRAPHQL_LIMITS.COST_MAX,
    propagateOnRejection: false,
    onReject: [
      limitReporter((found) =>
        `Query cost ${found} exceeds the limit of ${GRAPHQL_LIMITS.COST_MAX}; ask for fewer items ("first") or fields`
      ),
    ],
  }),
] as ValidationRule[];

const rules: readonly ValidationRule[] = [...specifiedRules, ...limitRules];

function rejected(errors: readonly GraphQLError[]): GuardResult {
  return { ok: false, status: 400, errors };
}

/** A copy of `error` with `code`, unless it already has a code (the limit rules set theirs). */
function withCode(error: GraphQLError, code: string): GraphQLError {
  if (error.extensions?.code !== undefined) return error;
  return new GraphQLError(error.message, {
    source: error.source,
    positions: error.positions,
    extensions: { code },
  });
}

/** Checks `params` against `schema` and the limits; on success the parsed document is ready to execute. */
export function checkGraphqlRequest(schema: GraphQLSchema, params: GraphqlParams): GuardResult {
  const { query } = params;
  if (query === null || query.trim() === "") {
    return rejected([requestError(
      GraphqlErrorCode.BAD_REQUEST,
      'Provide a query in "query", for example { products { nodes { id name } } }',
    )]);
  }
  const bytes = new TextEncoder().encode(query).byteLength;
  if (bytes > GRAPHQL_LIMITS.QUERY_BYTES_MAX) {
    return rejected([requestError(
      GraphqlErrorCode.QUERY_REJECTED,
      `Query is ${bytes} bytes, over the limit of ${GRAPHQL_LIMITS.QUERY_BYTES_MAX}; send a shorter query`,
    )]);
  }
  let document: DocumentNode;
  try {
    document = parse(new Source(query, "GraphQL request"), { maxTokens: GRAPHQL_LIMITS.TOKENS_MAX });
  } catch (error) {
    if (!(error instanceof GraphQLError)) throw error;
    const tooLong = /contains more th\w+ \d+ tokens/.test(error.message);
    return rejected([
      tooLong
        ? requestError(
          GraphqlErrorCode.QUERY_REJECTED,
          `Query has more than ${GRAPHQL_LIMITS.TOKENS_MAX} tokens; send a shorter query`,
        )
        : withCode(error, GraphqlErrorCode.PARSE_FAILED),
    ]);
  }
  const invalid = validate(schema, document, rules, {
    hideSuggestions: true,
    maxErrors: GRAPHQL_LIMITS.VALIDATION_ERRORS_MAX,
  });
  if (invalid.length > 0) return rejected(invalid.map((e) => withCode(e, GraphqlErrorCode.VALIDATION_FAILED)));

  const operation = getOperationAST(document, params.operationName);
  if (!operation) {
    return rejected([requestError(
      GraphqlErrorCode.BAD_REQUEST,
      params.operationName === null
        ? 'The document has several operations; name the one to run in "operationName"'
        : `No operation is named "${params.operationName.slice(0, 64)}"; check "operationName"`,
    )]);
  }
  if (operation.operation !== "query") {
    return rejected([requestError(
      GraphqlErrorCode.BAD_REQUEST,
      `Operation type "${operation.operation}" is not served here; this API answers queries only`,
    )]);
  }
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], params.variables ?? {}, {
    maxErrors: GRAPHQL_LIMITS.VALIDATION_ERRORS_MAX,
    hideSuggestions: true,
  });
  if (coerced.errors) return rejected(coerced.errors.map((e) => withCode(e, GraphqlErrorCode.VALIDATION_FAILED)));
  return { ok: true, document };
}
