/**
 * @module
 * Proxies a WebSocket through a Deno process (the regional ingress; the edge under Deno): the upstream
 * socket is opened first (with the client's Authorization and trace headers), so a refused upstream
 * answers the client with a problem response instead of an upgraded socket that dies at once. An upstream
 * that answered the handshake with a 4xx or 5xx gets that status passed on (a 401 stays a 401, so nobody
 * retries a client's own refusal elsewhere); one that could not be reached or did not answer in time is a
 * 503, and one that answered anything else (2xx, 3xx) a 502. Messages flow both ways unchanged; closing
 * either side closes the other with the same code where the protocol allows. A client that left while the
 * upstream was answering is not upgraded (its upstream socket is closed at once), and an upgraded client socket
 * that does not open within the connect timeout gets its upstream closed: either would otherwise pin an upstream
 * socket, and the chain of connections behind it, for good. Bounded: connect timeout (upstream handshake, then
 * client open), and a cap on bytes buffered towards a slow side (then close 4013).
 */
import { PROBLEM_CONTENT_TYPE, type ProblemCode, problemOf } from "../contracts/problem.ts";
import { upstreamTarget } from "./proxy.ts";

export interface WebSocketProxyOptions {
  /** `ws://host:port` of the upstream; the request's path and query are kept. */
  readonly upstream: string;
  /** Bound on the upstream's handshake, and then on the client's upgraded socket opening. */
  readonly connectTimeoutMs: number;
  /** Extra headers for the upstream handshake (trace context). */
  readonly setHeaders?: Readonly<Record<string, string>>;
  /** The address of the peer that sent the handshake: appended to `X-Forwarded-For` (or starts it). */
  readonly clientAddress?: string;
  /** Close a side whose unsent data exceeds this. @default 1 MiB */
  readonly bufferedBytesMax?: number;
  /** Injected for tests. @default Deno.upgradeWebSocket */
  readonly upgrade?: (request: Request, options: Deno.UpgradeWebSocketOptions) => Deno.WebSocketUpgrade;
}

/** Headers worth carrying into the upstream handshake; hop-by-hop and WebSocket handshake ones are not. */
const FORWARDED = ["authorization", "cookie", "traceparent", "correlation-id", "x-forwarded-for", "user-agent"];

/** True when `request` asks for a WebSocket upgrade. */
export function isWebSocketUpgrade(request: Request): boolean {
  return request.headers.get("upgrade")?.toLowerCase() === "websocket";
}

/**
 * The WebSocket API lets an endpoint send only 1000 or 3000–4999; any other code received (1001, 1006,
 * 1009, 1011 …) is passed on as 1000 with the original code in the reason.
 */
function closeArgsOf(code: number, reason: string): [number, string] {
  if (code === 1000 || (code >= 3000 && code <= 4999)) return [code, reason];
  // Close reasons are limited to 123 bytes.
  return [1000, `peer closed with ${code}${reason ? `: ${reason}` : ""}`.slice(0, 120)];
}

function safeClose(socket: WebSocket, code: number, reason: string): void {
  try {
    socket.close(...closeArgsOf(code, reason));
  } catch {
    // Already closing.
  }
}

/** Why the upstream handshake failed: `status` when the upstream answered with one instead of upgrading. */
class HandshakeFailed extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

/**
 * Deno's WebSocket reports a non-101 answer only in its error message ("… Invalid status code: 401"); the
 * answer's body and headers are not exposed (`websocket_proxy_test.ts` pins the wording on this Deno).
 */
const REFUSED_STATUS = /Invalid status code: (\d{3})\b/;

function openUpstream(url: string, headers: Record<string, string>, protocols: string[], timeoutMs: number) {
  return new Promise<WebSocket>((resolve, reject) => {
    // Deno's WebSocket accepts handshake headers (an extension of the web API).
    const socket = new WebSocket(url, { headers, protocols } as unknown as string[]);
    const timer = setTimeout(() => {
      socket.close();
      reject(new HandshakeFailed(`no handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.onopen = () => {
      clearTimeout(timer);
      resolve(socket);
    };
    socket.onerror = (event) => {
      clearTimeout(timer);
      const message = (event as ErrorEvent).message || "upstream refused the WebSocket";
      const status = REFUSED_STATUS.exec(message)?.[1];
      reject(new HandshakeFailed(message, status === undefined ? undefined : Number(status)));
    };
  });
}

/** The codes a passed-on refusal is named by; other statuses keep their number under a code of their class. */
const REFUSAL_CODES: Readonly<Record<number, ProblemCode>> = Object.freeze({
  400: "COMMON.VALIDATION_FAILED",
  401: "AUTH.UNAUTHENTICATED",
  403: "AUTH.FORBIDDEN",
  404: "COMMON.NOT_FOUND",
  405: "COMMON.METHOD_NOT_ALLOWED",
  409: "COMMON.CONFLICT",
  413: "COMMON.PAYLOAD_TOO_LARGE",
  429: "COMMON.RATE_LIMITED",
  500: "COMMON.INTERNAL",
  503: "COMMON.UPSTREAM_UNAVAILABLE",
  504: "COMMON.UPSTREAM_TIMEOUT",
});

/** The problem answer for a failed upstream handshake (never upgraded, so the client can be told why). */
function refusalOf(error: HandshakeFailed): Response {
  const passed = error.status !== undefined && error.status >= 400 && error.status <= 599 ? error.status : undefined;
  // A 2xx or 3xx to an upgrade is not a WebSocket server: a bad gateway, not a refusal to pass on.
  const status = passed ?? (error.status === undefined ? 503 : 502);
  const code = REFUSAL_CODES[status] ?? (status < 500 ? "COMMON.VALIDATION_FAILED" : "COMMON.UPSTREAM_UNAVAILABLE");
  const detail = error.status === undefined
    ? `WebSocket upstream unavailable: ${error.message}`
    : `WebSocket upstream answered the handshake with ${error.status} instead of upgrading`;
  const body = { ...problemOf(code, detail), status };
  const headers: Record<string, string> = { "content-type": PROBLEM_CONTENT_TYPE };
  // RFC 9110 requires a challenge on a 401; the upstream's own is not visible through Deno's WebSocket.
  if (status === 401) headers["www-authenticate"] = "Bearer";
  return new Response(JSON.stringify(body), { status, headers });
}

/** Why `request` is not a WebSocket handshake RFC 6455 section 4.2.1 accepts, or undefined when it is one. */
function handshakeFault(request: Request): string | undefined {
  if (request.method !== "GET") return `a WebSocket handshake is a GET, not ${request.method}`;
  const connection = (request.headers.get("connection") ?? "").toLowerCase().split(",").map((t) => t.trim());
  if (!connection.includes("upgrade")) return 'the "Connection" header must include "Upgrade"';
  if (!request.headers.get("sec-websocket-key")) return 'the "Sec-WebSocket-Key" header is missing';
  if (request.headers.get("sec-websocket-version") !== "13") return 'the "Sec-WebSocket-Version" header must be 13';
  return undefined;
}

/** The answer for a client that left before its handshake was answered: nobody reads it. */
function clientGone(): Response {
  const detail = "The client closed its connection before the WebSocket handshake was answered";
  return new Response(JSON.stringify(problemOf("COMMON.REQUEST_INCOMPLETE", detail)), {
    status: 400,
    headers: { "content-type": PROBLEM_CONTENT_TYPE },
  });
}

function badHandshake(detail: string): Response {
  return new Response(JSON.stringify(problemOf("COMMON.VALIDATION_FAILED", `Not a WebSocket handshake: ${detail}`)), {
    status: 400,
    headers: { "content-type": PROBLEM_CONTENT_TYPE },
  });
}

/**
 * Closes `upstream` when `client` does not open within `timeoutMs`, or fails or closes before it opens. A client
 * whose TCP connection is gone when it is upgraded still gets a socket from `Deno.upgradeWebSocket`, but that socket
 * never opens and never closes: nothing then closed the upstream, and each such socket held a chain of connections
 * (edge, ingress, service) counted against the service's socket caps for good. `proxyWebSocket` does not upgrade a
 * client its request's signal already reports gone; this bound covers one that leaves after that check.
 */
function closeUpstreamUnlessClientOpens(client: WebSocket, upstream: WebSocket, timeoutMs: number): void {
  let settled = false;
  const abandon = (reason: string) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    safeClose(upstream, 1000, reason);
    // Marks the client socket closing too; Deno may never report it closed, so nothing waits for that.
    safeClose(client, 1000, reason);
  };
  const timer = setTimeout(() => abandon(`client did not open the WebSocket within ${timeoutMs} ms`), timeoutMs);
  client.addEventListener("open", () => {
    // From here the pipe closes each side when the other closes.
    settled = true;
    clearTimeout(timer);
  }, { once: true });
  client.addEventListener("error", () => abandon("client failed before the WebSocket opened"), { once: true });
  client.addEventListener("close", () => abandon("client closed before the WebSocket opened"), { once: true });
}

/**
 * Upgrades `request` and pipes it to the upstream WebSocket. A request that is not a valid handshake is answered
 * 400 before any upstream socket is opened (opened first, it would have stayed open with nobody on the other
 * end, counted against the upstream's socket limits).
 */
export async function proxyWebSocket(request: Request, options: WebSocketProxyOptions): Promise<Response> {
  const fault = handshakeFault(request);
  if (fault !== undefined) return badHandshake(fault);
  const incoming = new URL(request.url);
  const target = upstreamTarget(incoming.pathname + incoming.search, options.upstream);
  const headers: Record<string, string> = {};
  for (const name of FORWARDED) {
    const value = request.headers.get(name);
    if (value) headers[name] = value;
  }
  if (options.clientAddress !== undefined) {
    const forwarded = headers["x-forwarded-for"];
    headers["x-forwarded-for"] = forwarded ? `${forwarded}, ${options.clientAddress}` : options.clientAddress;
  }
  Object.assign(headers, options.setHeaders);
  const protocols = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(
    Boolean,
  );
  // Read on this path only: for a plain request, reading `request.signal` costs an AbortSignal per request
  // (see proxy.ts). Here it tells a client that left during the upstream handshake, which must not be upgraded:
  // Deno then hands out a socket that never opens or closes and keeps the connection until the process exits.
  const clientSignal = request.signal;
  let upstream: WebSocket;
  try {
    upstream = await openUpstream(target.toString(), headers, protocols, options.connectTimeoutMs);
  } catch (error) {
    return refusalOf(error instanceof HandshakeFailed ? error : new HandshakeFailed(String(error)));
  }
  if (clientSignal.aborted) {
    // The upstream's handshake is let finish and then closed, not cut off: a cut one can leave the same kind of
    // never-closing socket in the upstream, if it upgrades after the connection went.
    safeClose(upstream, 1000, "client left during the handshake");
    return clientGone();
  }
  let upgraded: ReturnType<typeof Deno.upgradeWebSocket>;
  try {
    upgraded = (options.upgrade ?? Deno.upgradeWebSocket)(request, { protocol: upstream.protocol || undefined });
  } catch (error) {
    safeClose(upstream, 1000, "client handshake failed");
    return badHandshake((error as Error).message);
  }
  const { socket: client, response } = upgraded;
  closeUpstreamUnlessClientOpens(client, upstream, options.connectTimeoutMs);
  const bufferedBytesMax = options.bufferedBytesMax ?? 1024 * 1024;
  const pipe = (from: WebSocket, to: WebSocket) => {
    // What `from` says before `to` is open (the upstream's greeting, sent while the client's 101 is still on
    // its way) waits here, bounded like a send buffer, and goes out on `to`'s open.
    let early: (string | ArrayBuffer)[] | undefined = [];
    let earlyBytes = 0;
    to.addEventListener("open", () => {
      const queued = early ?? [];
      early = undefined;
      for (const data of queued) to.send(data);
    }, { once: true });
    from.onmessage = (event) => {
      if (to.readyState === WebSocket.CONNECTING && early !== undefined) {
        earlyBytes += typeof event.data === "string" ? event.data.length * 3 : (event.data as ArrayBuffer).byteLength;
        if (earlyBytes > bufferedBytesMax) {
          safeClose(to, 4013, "peer too slow");
          safeClose(from, 4013, "peer too slow");
          return;
        }
        early.push(event.data);
        return;
      }
      if (to.readyState !== WebSocket.OPEN) return;
      if (to.bufferedAmount > bufferedBytesMax) {
        safeClose(to, 4013, "peer too slow");
        safeClose(from, 4013, "peer too slow");
        return;
      }
      to.send(event.data);
    };
    from.onclose = (event) => {
      if (to.readyState === WebSocket.OPEN || to.readyState === WebSocket.CONNECTING) {
        safeClose(to, event.code, event.reason);
      }
    };
    from.onerror = () => {
      if (to.readyState === WebSocket.OPEN) safeClose(to, 4011, "peer failed");
    };
  };
  upstream.binaryType = "arraybuffer";
  client.binaryType = "arraybuffer";
  pipe(upstream, client);
  pipe(client, upstream);
  return response;
}
