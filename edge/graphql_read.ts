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
import { REQUEST_BODY_IDLE_TIMEOUT_MS } from "../shared/http/request_body.ts";

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
  const text = await readTextBounded(request.body, GRAPHQL_BODY_BYTES_MAX, idleTimeoutMs);
  if (text === null) return "too-large";
  if (text === BODY_FAILED) return "incomplete";
  if (text === BODY_STALLED) return "timeout";
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

/** Symbols, not strings: any string may be a body. */
const BODY_FAILED = Symbol("body failed");
const BODY_STALLED = Symbol("body stalled");

/**
 * The body as text; null past `bytesMax`; {@linkcode BODY_STALLED} when no chunk came for `idleTimeoutMs` (the
 * stream is cancelled); {@linkcode BODY_FAILED} when reading failed. This is the client's own
 * stream, so a failure is the client's (a closed or reset connection mid-upload), never the region's, and the
 * runtime's error type is not web-standard (Deno throws `BadResource`): any failure counts.
 */
async function readTextBounded(
  body: ReadableStream<Uint8Array> | null,
  bytesMax: number,
  idleTimeoutMs: number,
): Promise<string | null | typeof BODY_FAILED | typeof BODY_STALLED> {
  if (body === null) return "";
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let size = 0;
  let text = "";
  while (true) {
    let chunk: ReadableStreamReadResult<Uint8Array> | typeof BODY_STALLED;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const stalled = new Promise<typeof BODY_STALLED>((resolve) => {
        timer = setTimeout(() => resolve(BODY_STALLED), idleTimeoutMs);
      });
      chunk = await Promise.race([reader.read(), stalled]);
    } catch {
      return BODY_FAILED;
    } finally {
      clearTimeout(timer);
    }
    if (chunk === BODY_STALLED) {
      await reader.cancel().catch(() => {});
      return BODY_STALLED;
    }
    const { done, value } = chunk;
    if (done) break;
    size += value.byteLength;
    if (size > bytesMax) {
      await reader.cancel();
      return null;
    }
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}
