/**
 * @module
 * Proxies a WebSocket through a Deno process (the regional ingress; the edge under Deno): the upstream
 * socket is opened first (with the client's Authorization and trace headers), so a refused upstream
 * answers the client with a problem response instead of an upgraded socket that dies at once. Messages
 * flow both ways unchanged; closing either side closes the other with the same code where the protocol
 * allows. Bounded: connect timeout, and a cap on bytes buffered towards a slow side (then close 4013).
 */
import { PROBLEM_CONTENT_TYPE, problemOf } from "../contracts/problem.ts";

export interface WebSocketProxyOptions {
  /** `ws://host:port` of the upstream; the request's path and query are kept. */
  readonly upstream: string;
  readonly connectTimeoutMs: number;
  /** Extra headers for the upstream handshake (trace context). */
  readonly setHeaders?: Readonly<Record<string, string>>;
  /** Close a side whose unsent data exceeds this. @default 1 MiB */
  readonly bufferedBytesMax?: number;
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

function openUpstream(url: string, headers: Record<string, string>, protocols: string[], timeoutMs: number) {
  return new Promise<WebSocket>((resolve, reject) => {
    // Deno's WebSocket accepts handshake headers (an extension of the web API).
    const socket = new WebSocket(url, { headers, protocols } as unknown as string[]);
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.onopen = () => {
      clearTimeout(timer);
      resolve(socket);
    };
    socket.onerror = (event) => {
      clearTimeout(timer);
      reject(new Error((event as ErrorEvent).message || "upstream refused the WebSocket"));
    };
  });
}

/** Upgrades `request` and pipes it to the upstream WebSocket. */
export async function proxyWebSocket(request: Request, options: WebSocketProxyOptions): Promise<Response> {
  const incoming = new URL(request.url);
  const target = new URL(incoming.pathname + incoming.search, options.upstream);
  const headers: Record<string, string> = {};
  for (const name of FORWARDED) {
    const value = request.headers.get(name);
    if (value) headers[name] = value;
  }
  Object.assign(headers, options.setHeaders);
  const protocols = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(
    Boolean,
  );
  let upstream: WebSocket;
  try {
    upstream = await openUpstream(target.toString(), headers, protocols, options.connectTimeoutMs);
  } catch (error) {
    const body = problemOf("COMMON.UPSTREAM_UNAVAILABLE", `WebSocket upstream refused: ${(error as Error).message}`);
    return new Response(JSON.stringify(body), { status: 503, headers: { "content-type": PROBLEM_CONTENT_TYPE } });
  }
  const { socket: client, response } = Deno.upgradeWebSocket(request, {
    protocol: upstream.protocol || undefined,
  });
  const bufferedBytesMax = options.bufferedBytesMax ?? 1024 * 1024;
  const pipe = (from: WebSocket, to: WebSocket) => {
    from.onmessage = (event) => {
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
