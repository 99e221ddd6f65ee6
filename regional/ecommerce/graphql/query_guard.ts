/**
 * @module
 * Everything a query must pass before it runs: size, token count, syntax, the schema (with field
 * suggestions hidden, so the API cannot be mapped by typos), no introspection, graphql-armor's depth and alias
 * limits, one query operation, its variables, and then its cost with those variables. A refusal is a 400 with
 * GraphQL errors, each with an `extensions.code`; it never reaches a resolver.
 */
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import {
  type ASTVisitor,
  BREAK,
  type DocumentNode,
  type FragmentDefinitionNode,
  getOperationAST,
  getVariableValues,
  GraphQLError,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  parse,
  Source,
  specifiedRules,
  validate,
  type ValidationContext,
  type ValidationRule,
  visit,
} from "graphql";
import { GraphqlErrorCode, requestError } from "./errors.ts";
import { operationCost } from "./query_cost.ts";
import type { GraphqlParams } from "./request_params.ts";

/** Where the schema is published instead of being answered to introspection (served by `routes.ts`). */
export const GRAPHQL_SCHEMA_PATH = "/graphql/schema.graphql";

/** Limits of every query. */
export const GRAPHQL_LIMITS = Object.freeze({
  /** Bytes of query text (UTF-8). */
  QUERY_BYTES_MAX: 10 * 1024,
  /** Lexical tokens the parser reads before giving up; bounds parse time whatever the text. */
  TOKENS_MAX: 2_000,
  DEPTH_MAX: 6,
  ALIASES_MAX: 10,
  /** graphql-armor's weights (objects 2, scalars 1, ×1.5 per level) × `first` as the resolver reads it. */
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

/**
 * `__schema` and `__type` are refused. Introspection resolvers are synchronous: what a query makes them do is done
 * on the event loop the gRPC server and REST share. The SDL is published at {@linkcode GRAPHQL_SCHEMA_PATH} instead,
 * which is all a client generator or an editor needs. Checked when the document is entered, so this error comes
 * before the depth error that a tool's introspection query also gets.
 */
function noIntrospectionRule(context: ValidationContext): ASTVisitor {
  return {
    Document(document) {
      visit(document, {
        Field(node) {
          const name = node.name.value;
          if (name !== "__schema" && name !== "__type") return undefined;
          context.reportError(
            new GraphQLError(`Introspection ("${name}") is disabled; read the schema at GET ${GRAPHQL_SCHEMA_PATH}`, {
              nodes: node,
              extensions: { code: GraphqlErrorCode.INTROSPECTION_DISABLED },
            }),
          );
          return BREAK;
        },
      });
    },
  };
}

/**
 * armor's rules report through `reportError` instead of throwing, which would escape `validate`. Depth counts
 * introspection too (armor skips `__schema` by default): refused above, but a limit should not rest on that.
 * armor's cost rule is not used: it reads `first` from literals only, so the cost is counted once variables are
 * known ({@linkcode operationCost}).
 */
const limitRules: readonly ValidationRule[] = [
  maxDepthRule({
    n: GRAPHQL_LIMITS.DEPTH_MAX,
    ignoreIntrospection: false,
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
] as ValidationRule[];

const rules: readonly ValidationRule[] = [...specifiedRules, noIntrospectionRule, ...limitRules];

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
  return costRefusal(schema, document, operation, coerced.coerced) ?? { ok: true, document };
}

/** The refusal of an operation that costs more than `COST_MAX` with its coerced variables, else undefined. */
function costRefusal(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>>,
): GuardResult | undefined {
  const fragments = document.definitions.filter((d): d is FragmentDefinitionNode =>
    d.kind === Kind.FRAGMENT_DEFINITION
  );
  let cost: number;
  try {
    cost = operationCost(schema, fragments, operation, variables);
  } catch (error) {
    // An argument that does not coerce; validation and getVariableValues leave none, execution would say the same.
    if (!(error instanceof GraphQLError)) throw error;
    return rejected([withCode(error, GraphqlErrorCode.VALIDATION_FAILED)]);
  }
  if (cost <= GRAPHQL_LIMITS.COST_MAX) return undefined;
  // Fragments spread in fragments grow the cost exponentially: past 2^53 the number says nothing more.
  const shown = cost < Number.MAX_SAFE_INTEGER ? String(Math.ceil(cost)) : `over ${Number.MAX_SAFE_INTEGER}`;
  return rejected([requestError(
    GraphqlErrorCode.QUERY_REJECTED,
    `Query cost ${shown} exceeds the limit of ${GRAPHQL_LIMITS.COST_MAX}; ask for fewer items ("first") or fields`,
  )]);
}
