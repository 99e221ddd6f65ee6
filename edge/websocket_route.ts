/**
 * @module
 * The edge's WebSocket handshake: the sticky region (cookie `bv-region`) while it is healthy, else the
 * router's choice; when that region cannot take the handshake or cannot be reached (a 5xx before any
 * upgrade: a connect error, a timeout, a region's own 5xx), one more try on the router's next choice in
 * the same request. A 4xx (401, 403, 429 …) is the region's answer about this client and goes back to it. A handshake changes nothing until it
 * succeeds, so trying it twice is safe; the browser would otherwise reconnect to the same dead region
 * until the probes took it out (2–5 s). The 101 names its region and (re)sets the sticky cookie, so a
 * session that failed over stays on its new region. An established session is never moved.
 */
import { cookieOf, STICKY_COOKIE } from "./client_request.ts";
import { edgeProblem } from "./edge_problem.ts";
import type { EdgeRegion, WebSocketConnector } from "./edge_options.ts";

/** Sticky for a day: long enough for a working session, short enough that a moved user drifts back. */
const STICKY_COOKIE_MAX_AGE_SEC = 86_400;

export interface WebSocketRouteDeps {
  /** Without a connector (a runtime that cannot proxy sockets) every upgrade is answered 503. */
  readonly connector: WebSocketConnector | undefined;
  /** The region named by the sticky cookie while healthy, else the router's choice for the request's hint. */
  readonly pickSticky: (request: Request, sticky: string | undefined) => EdgeRegion | undefined;
  /** The router's choice for `hint`, never `exclude`. */
  readonly pick: (hint: string | null, exclude: EdgeRegion) => EdgeRegion | undefined;
  readonly noRegion: () => Response;
  readonly counters: { webSockets: number; failovers: number };
}

/**
 * Opens a proxied WebSocket for `request` (the raw one the server handed over: only it can be upgraded);
 * `headersFor` gives the headers the edge adds for a region (trace, verified subject), and `clientAddress` is
 * appended to the handshake's `X-Forwarded-For`.
 */
export async function openWebSocket(
  request: Request,
  deps: WebSocketRouteDeps,
  headersFor: (region: EdgeRegion) => Record<string, string>,
  clientAddress?: string,
): Promise<Response> {
  if (deps.connector === undefined) {
    return edgeProblem("COMMON.UPSTREAM_UNAVAILABLE", "This edge deployment does not proxy WebSockets");
  }
  // The sticky cookie keeps a reconnecting session on the region it started in (its state lives there).
  const first = deps.pickSticky(request, cookieOf(request, STICKY_COOKIE));
  if (first === undefined) return deps.noRegion();
  let region: EdgeRegion = first;
  deps.counters.webSockets++;
  for (let attempt = 0;; attempt++) {
    const response = await deps.connector(request, {
      upstream: region.url.replace(/^http/, "ws"),
      setHeaders: headersFor(region),
      clientAddress,
    });
    if (response.status === 101) {
      response.headers.set("x-bv-region", region.name);
      response.headers.set(
        "set-cookie",
        `${STICKY_COOKIE}=${region.name}; Path=/ws; Max-Age=${STICKY_COOKIE_MAX_AGE_SEC}; HttpOnly; SameSite=Lax`,
      );
      return response;
    }
    // A 4xx is the region's answer about this client (the connector passes the region's status on): asking
    // the other region would spend a second handshake, and a second rate-limit token, on the same refusal.
    // The refusing region is not marked out here: a connector's 503 may also be a region at its socket cap,
    // and the probes take a dead region out within 2–5 s.
    const next: EdgeRegion | undefined = response.status >= 500 && attempt === 0
      ? deps.pick(request.headers.get("x-bv-region"), region)
      : undefined;
    if (next === undefined) return response;
    await response.body?.cancel();
    deps.counters.failovers++;
    region = next;
  }
}
