/**
 * @module
 * Classifies a GraphQL POST at the edge: a document whose every operation is a `query` is a public read
 * (no token needed, cacheable by a hash of its normalised form); one with a mutation or subscription needs
 * a token. The body is read once with the region's own bound (64 KiB) and forwarded as read. A body the
 * edge cannot parse is `unparsed`: it is not cached and, since the edge cannot prove it is only a read, it
 * needs a token like a mutation (fail closed; the region then answers the syntax error).
 */
import { Kind, parse, stripIgnoredCharacters } from "graphql";
import { sha256Hex } from "./hot_cache.ts";
import { ProblemError } from "../shared/contracts/problem.ts";
import { boundedBody, REQUEST_BODY_IDLE_TIMEOUT_MS } from "../shared/http/request_body.ts";

/** The region's bound on a GraphQL body (`GRAPHQL_BODY_BYTES_MAX` in the ecommerce service). */
export const GRAPHQL_BODY_BYTES_MAX = 64 * 1024;

/** Token budget of the edge's parse: the region allows 10 KiB of query, far below this many tokens. */
const PARSE_TOKENS_MAX = 5_000;

export type GraphqlRequestKind = "read" | "write" | "unparsed";

export interface GraphqlRead {
  readonly kind: GraphqlRequestKind;
  /** The body as received, to forward. */
  readonly text: string;
  /** For reads: the cache key part, a SHA-256 of query (ignored characters stripped), operation and variables. */
  readonly keyBase?: string;
}

/**
 * Reads and classifies the body; `"too-large"` when it exceeds {@linkcode GRAPHQL_BODY_BYTES_MAX}, `"incomplete"`
 * when the client's body stream failed before its end (the client went away mid-upload), `"timeout"` when no part
 * of it came for `idleTimeoutMs` (a stalled or trickling client: the proxies answer it 408 the same way).
 */
export async function readGraphqlRequest(
  request: Request,
  idleTimeoutMs: number = REQUEST_BODY_IDLE_TIMEOUT_MS,
): Promise<GraphqlRead | "too-large" | "incomplete" | "timeout"> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > GRAPHQL_BODY_BYTES_MAX) {
    await request.body?.cancel();
    return "too-large";
  }
  const read = await readTextBounded(request.body, GRAPHQL_BODY_BYTES_MAX, idleTimeoutMs);
  if (typeof read === "string") return read;
  const { text } = read;
  const mediaType = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  let query: unknown;
  let operationName: unknown = null;
  let variables: unknown = null;
  if (mediaType === "application/graphql") {
    query = text;
  } else if (mediaType === "application/json") {
    try {
      ({ query, operationName = null, variables = null } = JSON.parse(text) ?? {});
    } catch {
      return { kind: "unparsed", text };
    }
  } else {
    return { kind: "unparsed", text };
  }
  if (typeof query !== "string") return { kind: "unparsed", text };
  let readOnly = true;
  try {
    const document = parse(query, { noLocation: true, maxTokens: PARSE_TOKENS_MAX });
    for (const definition of document.definitions) {
      if (definition.kind === Kind.OPERATION_DEFINITION && definition.operation !== "query") readOnly = false;
    }
  } catch {
    return { kind: "unparsed", text };
  }
  if (!readOnly) return { kind: "write", text };
  const sortedVariables = canonical(variables, 0);
  // Variables nested deeper than any real query needs are forwarded but not cached.
  if (sortedVariables === TOO_DEEP) return { kind: "read", text };
  const normalised = JSON.stringify([stripIgnoredCharacters(query), operationName, sortedVariables]);
  return { kind: "read", text, keyBase: `graphql ${await sha256Hex(normalised)}` };
}

const TOO_DEEP = Symbol("too deep");
const VARIABLES_DEPTH_MAX = 32;

/** `value` with object keys sorted at every depth, so `{a,b}` and `{b,a}` variables share a cache entry. */
function canonical(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== "object") return value;
  if (depth > VARIABLES_DEPTH_MAX) return TOO_DEEP;
  if (Array.isArray(value)) {
    const items = value.map((item) => canonical(item, depth + 1));
    return items.includes(TOO_DEEP) ? TOO_DEEP : items;
  }
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const item = canonical((value as Record<string, unknown>)[key], depth + 1);
    if (item === TOO_DEEP) return TOO_DEEP;
    sorted[key] = item;
  }
  return sorted;
}

/** How a body read can fail, by the problem code the shared body bound ends it with. */
const BODY_FAILURES: Readonly<Record<string, "too-large" | "incomplete" | "timeout">> = {
  "COMMON.PAYLOAD_TOO_LARGE": "too-large",
  "COMMON.REQUEST_TIMEOUT": "timeout",
  "COMMON.REQUEST_INCOMPLETE": "incomplete",
};

/**
 * The body's text, read through the proxies' own bound (`boundedBody`: bytes counted as they arrive, an idle
 * deadline per chunk, the client's stream cancelled on a failure). This is the client's own stream, so any other
 * failure is the client's too (Deno throws `BadResource` for a reset connection): "incomplete".
 */
async function readTextBounded(
  body: ReadableStream<Uint8Array> | null,
  bytesMax: number,
  idleTimeoutMs: number,
): Promise<{ readonly text: string } | "too-large" | "incomplete" | "timeout"> {
  if (body === null) return { text: "" };
  const reader = boundedBody(body, { bytesMax, idleTimeoutMs }).getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      text += decoder.decode(chunk.value, { stream: true });
    }
  } catch (error) {
    return (error instanceof ProblemError && BODY_FAILURES[error.code]) || "incomplete";
  }
  return { text: text + decoder.decode() };
}
