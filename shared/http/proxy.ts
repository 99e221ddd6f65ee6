/**
 * @module
 * A reverse-proxy step on web-standard APIs only (fetch, Headers, streams), so the edge worker and the
 * regional ingress share it. Bodies stream both ways; the request body is bounded as it streams (size, idle time:
 * `request_body.ts`), and the upstream deadline runs only while the proxy waits on the upstream, up to its response
 * headers, so neither a slow upload nor a long-lived SSE stream is cut by it. A failed upstream becomes a 503/504
 * problem, never a throw; a client whose body breaks a bound gets 400/408/413, which blame no upstream.
 * Hop-by-hop headers (the fixed list and those `Connection` names) go no further in either direction; a caller
 * names the request headers a client may not send (`dropHeaders`) and the peer to add to `X-Forwarded-For`.
 */
import { PROBLEM_CONTENT_TYPE, type ProblemError, problemOf } from "../contracts/problem.ts";
import { bodyTooLarge, boundedBody, declaredOver, REQUEST_BODY_IDLE_TIMEOUT_MS } from "./request_body.ts";
import { JSON_BODY_BYTES_MAX } from "./json_body.ts";

/** Hop-by-hop headers (RFC 9110 section 7.6.1) are never forwarded. */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
];

export interface ProxyOptions {
  /** Base URL of the upstream, for example `http://127.0.0.1:8110`. */
  readonly upstream: string;
  /**
   * Bound on each wait on the upstream: to connect and take the next chunk of the body, then for its response
   * headers once the body is sent. Time spent waiting on the client for its body is not counted: that is bounded by
   * `bodyIdleTimeoutMs`, and a slow upload is no sign of a slow upstream.
   */
  readonly headersTimeoutMs: number;
  /**
   * Longest wait for the client's next body chunk; past it the answer is 408 and the upstream call is dropped.
   * @default REQUEST_BODY_IDLE_TIMEOUT_MS (10 s)
   */
  readonly bodyIdleTimeoutMs?: number;
  /**
   * Largest request body forwarded, counted as it streams (a larger `Content-Length` is refused up front).
   * @default JSON_BODY_BYTES_MAX (1 MiB, every service's own bound)
   */
  readonly bodyBytesMax?: number;
  /** Extra headers to set on the forwarded request (trace context, forwarding info). */
  readonly setHeaders?: Readonly<Record<string, string>>;
  /**
   * Lower-case names of request headers the caller may not send (a client's copies of the platform's internal
   * headers): removed before `setHeaders` applies, so the proxy's own values still go out.
   */
  readonly dropHeaders?: ReadonlySet<string>;
  /** The address of the peer that sent `request`: appended to `X-Forwarded-For` (or starts it). */
  readonly clientAddress?: string;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch;
}

/**
 * Set only on responses this proxy made itself because the upstream could not be reached or timed out,
 * so a caller can tell "region down" from "region answered 503". Stripped from upstream responses.
 */
export const PROXY_ERROR_HEADER = "x-bv-proxy-error";

function problem(status: 503 | 504, detail: string): Response {
  const body = problemOf(status === 503 ? "COMMON.UPSTREAM_UNAVAILABLE" : "COMMON.UPSTREAM_TIMEOUT", detail);
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, [PROXY_ERROR_HEADER]: status === 503 ? "unreachable" : "timeout" },
  });
}

const HOP_BY_HOP_NAMES: ReadonlySet<string> = new Set(HOP_BY_HOP);

/**
 * `headers` without the hop-by-hop ones — the fixed list, and those the message's own `Connection` header names
 * (RFC 9110 section 7.6.1: a proxy removes them; `Connection: x-secret` marks `x-secret` as meant for this hop
 * only) — nor the `dropped` ones, with `set` applied, as a list fetch and Response take without another Headers
 * copy.
 */
function endToEnd(
  headers: Headers,
  set?: Readonly<Record<string, string>>,
  dropped?: ReadonlySet<string>,
): [string, string][] {
  // One pass over the (lower-cased) names instead of a Headers copy plus ten deletes: on the ingress's hot
  // path every Headers call is a WebIDL conversion, and the copy alone was ~5 µs per request.
  const replaced = set === undefined ? undefined : Object.entries(set).map(([n, v]) => [n.toLowerCase(), v] as const);
  const replacedNames = replaced === undefined ? undefined : new Set(replaced.map(([name]) => name));
  let kept: [string, string][] = [];
  let connection: string | undefined;
  headers.forEach((value, name) => {
    if (name === "connection") connection = value;
    else if (!HOP_BY_HOP_NAMES.has(name) && !replacedNames?.has(name) && !dropped?.has(name)) kept.push([name, value]);
  });
  // Rare (clients send `keep-alive` or `close`, both removed anyway), so filtered in a second pass only then.
  if (connection !== undefined) {
    const named = new Set(connection.split(",").map((option) => option.trim().toLowerCase()));
    if ([...named].some((name) => name !== "close" && name !== "keep-alive" && name !== "upgrade")) {
      kept = kept.filter(([name]) => !named.has(name));
    }
  }
  for (const [name, value] of replaced ?? []) kept.push([name, value]);
  return kept;
}

/**
 * `headers` with `address` appended to `X-Forwarded-For` (de facto syntax: `client, proxy1, proxy2`), unless the
 * caller sets that header itself (`set`): then its value stands, as every set header's does.
 */
function appendForwardedFor(
  headers: [string, string][],
  address: string,
  set: Readonly<Record<string, string>> | undefined,
): void {
  if (set !== undefined && Object.keys(set).some((name) => name.toLowerCase() === "x-forwarded-for")) return;
  const at = headers.findIndex(([name]) => name === "x-forwarded-for");
  if (at < 0) headers.push(["x-forwarded-for", address]);
  else headers[at] = ["x-forwarded-for", `${headers[at][1]}, ${address}`];
}

/** The path and query of an absolute URL (`http://host/p?q` → `/p?q`) without parsing it again. */
function pathAndQueryOf(url: string): string {
  const slash = url.indexOf("/", url.indexOf("//") + 2);
  return slash === -1 ? "/" : url.slice(slash);
}

/**
 * `upstream` with the path and query `pathAndQuery` — always on `upstream`'s host. Resolving the path as a
 * reference (`new URL(path, upstream)`) let a request path `//evil.example/x` (or `/\evil.example/x`) name
 * another host: the proxy then fetched any URL a client chose, with its credentials.
 */
export function upstreamTarget(pathAndQuery: string, upstream: string | URL): URL {
  const target = new URL(upstream);
  const query = pathAndQuery.indexOf("?");
  target.pathname = query < 0 ? pathAndQuery : pathAndQuery.slice(0, query);
  target.search = query < 0 ? "" : pathAndQuery.slice(query);
  return target;
}

/** Forwards `request` (same path and query) to `options.upstream` and returns the upstream's response. */
export async function proxyRequest(request: Request, options: ProxyOptions): Promise<Response> {
  const target = upstreamTarget(pathAndQueryOf(request.url), options.upstream);
  const bytesMax = options.bodyBytesMax ?? JSON_BODY_BYTES_MAX;
  const clientBody = request.method === "GET" || request.method === "HEAD" ? null : request.body;
  const declared = clientBody === null ? undefined : declaredOver(request.headers, bytesMax);
  if (declared !== undefined) return clientProblem(bodyTooLarge(bytesMax, declared));
  const headers = endToEnd(request.headers, options.setHeaders, options.dropHeaders);
  if (options.clientAddress !== undefined) appendForwardedFor(headers, options.clientAddress, options.setHeaders);
  // Only the upstream deadline aborts the upstream call. The client's own `request.signal` is not linked: a
  // client that leaves before the headers costs at most that deadline upstream, one that leaves during the body
  // cancels the piped body (and with it the upstream connection), and reading `request.signal` alone made Deno
  // build an AbortSignal per request and abort it with a DOMException after every response (its legacy
  // behaviour, which also printed a warning per process).
  const controller = new AbortController();
  // The deadline runs while the proxy waits on the upstream (to connect, to take a chunk, for its headers) and is
  // stopped while it waits on the client for the next chunk, each wait on the upstream getting the whole budget.
  // Started only once the body was sent, an upstream that never took the body would hold the call for ever.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let settled = false;
  const startDeadline = () => {
    if (settled) return;
    clearTimeout(timer);
    timer = setTimeout(
      () => controller.abort(new DOMException("headers timeout", "TimeoutError")),
      options.headersTimeoutMs,
    );
  };
  let clientFailure: ProblemError | undefined;
  const body = clientBody === null ? undefined : boundedBody(clientBody, {
    bytesMax,
    idleTimeoutMs: options.bodyIdleTimeoutMs ?? REQUEST_BODY_IDLE_TIMEOUT_MS,
  }, {
    onClientWait: (waiting) => waiting ? clearTimeout(timer) : startDeadline(),
    onFailed: (problem) => clientFailure ??= problem,
  });
  startDeadline();
  try {
    const upstream = await (options.fetch ?? fetch)(target, {
      method: request.method,
      headers,
      body,
      redirect: "manual",
      signal: controller.signal,
      // Streaming request bodies need half-duplex mode in fetch implementations that support it.
      ...(body === undefined ? {} : { duplex: "half" }),
    } as RequestInit);
    const responseHeaders = endToEnd(upstream.headers, undefined).filter(([name]) => name !== PROXY_ERROR_HEADER);
    return new Response(upstream.body, {
      status: upstream.status,
      statusText: upstream.statusText,
      headers: responseHeaders,
    });
  } catch (error) {
    // The client's body broke a bound or broke off: no upstream is to blame, so no proxy marker (the edge would
    // count the region as unreachable). Most likely nobody reads a 400 or 408; a 413 is read.
    if (clientFailure !== undefined) return clientProblem(clientFailure);
    const timedOut = controller.signal.aborted && (controller.signal.reason as Error)?.name === "TimeoutError";
    return timedOut
      ? problem(504, `Upstream ${target.host} sent no response within ${options.headersTimeoutMs} ms`)
      : problem(503, `Upstream ${target.host} is unavailable: ${(error as Error).message}`);
  } finally {
    // A body still streaming after the answer (an upstream that answered early) must not start the deadline again:
    // it would abort the response body.
    settled = true;
    clearTimeout(timer);
  }
}

/** The problem a client's body caused, without the proxy's marker, with its headers (`Connection: close`). */
function clientProblem(failure: ProblemError): Response {
  return new Response(JSON.stringify(problemOf(failure.code, failure.message)), {
    status: failure.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...failure.headers },
  });
}
