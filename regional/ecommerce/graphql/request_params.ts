/**
 * @module
 * Reads `{ query, variables, operationName }` from a GraphQL-over-HTTP request: GET with URL parameters,
 * or POST with `application/json` (any charset parameter) or `application/graphql`. The body is read with
 * a hard byte bound, so a client cannot make the server buffer more than that. A body the service app's
 * bounds cut off (it stalled, the client went away) is answered as a GraphQL error too, not as problem+json.
 */
import { GraphQLError } from "graphql";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { UNREAD_BODY_HEADERS } from "../../../shared/http/request_body.ts";
import { GraphqlErrorCode, requestError } from "./errors.ts";

export interface GraphqlParams {
  readonly query: string | null;
  readonly variables: Readonly<Record<string, unknown>> | null;
  readonly operationName: string | null;
}

export type ParamsResult =
  | { readonly ok: true; readonly params: GraphqlParams }
  | {
    readonly ok: false;
    readonly status: number;
    readonly error: GraphQLError;
    /** Headers the answer must carry: `Connection: close` when the rest of the body is still unread. */
    readonly headers?: Readonly<Record<string, string>>;
  };

/** Largest request body: the query (10 KiB at most) plus variables. */
export const GRAPHQL_BODY_BYTES_MAX = 64 * 1024;

function badRequest(message: string, status = 400): ParamsResult {
  return { ok: false, status, error: requestError(GraphqlErrorCode.BAD_REQUEST, message) };
}

/** Reads the parameters of `request`; anything unreadable is a 4xx result, never a throw. */
export async function readGraphqlParams(request: Request): Promise<ParamsResult> {
  if (request.method === "GET") {
    const url = new URL(request.url);
    return paramsOf({
      query: url.searchParams.get("query"),
      variables: url.searchParams.get("variables"),
      operationName: url.searchParams.get("operationName"),
    });
  }
  const mediaType = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (mediaType !== "application/json" && mediaType !== "application/graphql") {
    return badRequest(
      `Content type "${mediaType.slice(0, 64)}" is not supported; send application/json or application/graphql`,
      415,
    );
  }
  let text: string | null;
  try {
    text = await readBoundedText(request, GRAPHQL_BODY_BYTES_MAX);
  } catch (error) {
    return unreadBody(error);
  }
  if (text === null) {
    return {
      ok: false,
      status: 413,
      error: requestError(
        GraphqlErrorCode.PAYLOAD_TOO_LARGE,
        `Request body exceeds ${GRAPHQL_BODY_BYTES_MAX} bytes; send a smaller query or fewer variables`,
      ),
      headers: UNREAD_BODY_HEADERS,
    };
  }
  if (mediaType === "application/graphql") return paramsOf({ query: text, variables: null, operationName: null });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return badRequest(
      'Request body is not valid JSON; send an object such as {"query": "{ products { nodes { id } } }"}',
    );
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return badRequest('Request body must be a JSON object with a "query" string; batched queries are not supported');
  }
  const fields = body as Record<string, unknown>;
  return paramsOf({ query: fields.query, variables: fields.variables, operationName: fields.operationName });
}

/**
 * A body whose read failed: the service app's bounds (`boundRequestBodies`) end it with a ProblemError (408 stalled,
 * 400 client gone, 413 over its byte limit), kept here with its status, headers and code (the edge answers the same
 * failures with the same codes); a 413 takes this API's own code. Any other failure of the read is the client's
 * stream breaking (Deno throws its own error for a reset connection): 400, as the shared bound would say.
 */
function unreadBody(error: unknown): ParamsResult {
  const problem = error instanceof ProblemError ? error : new ProblemError(
    "COMMON.REQUEST_INCOMPLETE",
    "The request body could not be read to its end (the client stopped sending); send the whole body",
    { cause: error },
  );
  const code = problem.status === 413 ? GraphqlErrorCode.PAYLOAD_TOO_LARGE : problem.code;
  return {
    ok: false,
    status: problem.status,
    error: new GraphQLError(problem.message, { extensions: { code } }),
    ...(problem.headers ? { headers: problem.headers } : {}),
  };
}

function paramsOf(raw: { query: unknown; variables: unknown; operationName: unknown }): ParamsResult {
  if (raw.query !== null && raw.query !== undefined && typeof raw.query !== "string") {
    return badRequest('"query" must be a string');
  }
  if (raw.operationName !== null && raw.operationName !== undefined && typeof raw.operationName !== "string") {
    return badRequest('"operationName" must be a string');
  }
  let variables = raw.variables;
  if (typeof variables === "string") {
    try {
      variables = JSON.parse(variables);
    } catch {
      return badRequest('"variables" is not valid JSON; send an object such as {"id": "…"}');
    }
  }
  if (variables !== null && variables !== undefined && (typeof variables !== "object" || Array.isArray(variables))) {
    return badRequest('"variables" must be an object');
  }
  return {
    ok: true,
    params: {
      query: (raw.query as string | null | undefined) ?? null,
      variables: (variables as Record<string, unknown> | null | undefined) ?? null,
      operationName: (raw.operationName as string | null | undefined) ?? null,
    },
  };
}

/**
 * The body as text, or null when it exceeds `maxBytes` (reading stops there). Invalid UTF-8 is replaced. Throws
 * what the body's stream fails with.
 */
async function readBoundedText(request: Request, maxBytes: number): Promise<string | null> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) return null;
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}
