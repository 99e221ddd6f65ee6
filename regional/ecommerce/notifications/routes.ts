/**
 * @module
 * `GET /ws/orders` (WebSocket) and `GET /sse/orders/{id}` (server-sent events). Both authenticate before
 * anything else: the access token comes from `Authorization: Bearer` or, for browsers whose WebSocket and
 * EventSource APIs cannot set headers, the `access_token` query parameter. A missing or bad token is a 401
 * problem before the upgrade. The WebSocket route sets no header of its own: header-changing middleware
 * can break the upgrade (honojs/hono#3206).
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { upgradeWebSocket } from "hono/deno";
import { streamSSE } from "hono/streaming";
import type { Principal, TokenVerifier } from "../../../shared/auth/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { errorToResponse } from "../../../shared/http/problem_response.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { shutdownSignalOf } from "../../../shared/runtime/mod.ts";
import type { NotificationHub } from "./hub.ts";
import { latestNotification } from "./notification_store.ts";
import { OrderSocket } from "./order_socket.ts";
import { serveOrderSse } from "./order_sse.ts";
import { CLOSE_CODES, eventIdSchema, type NotificationLimits, orderIdSchema, unexpired } from "./protocol.ts";

export interface NotificationRoutesDeps {
  readonly sql: Sql;
  readonly hub: NotificationHub;
  readonly verifier: TokenVerifier;
  readonly limits: NotificationLimits;
  readonly heartbeatMs: number;
  /** Milliseconds since the epoch (tests). @default Date.now */
  readonly now?: () => number;
  /**
   * Seconds without a pong after which Deno drops a silent WebSocket (it pings in between), so a vanished
   * client frees its slot. @default 30
   */
  readonly idleTimeoutSec?: number;
}

export interface NotificationRoutes {
  readonly routes: Hono;
  /** Open WebSockets and SSE streams right now. */
  connections(): { readonly sockets: number; readonly sseStreams: number };
  /** Closes every WebSocket with 1001 and ends every SSE stream (service shutdown). */
  closeAll(): void;
}

const BEARER = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)$/i;
const WWW_AUTHENTICATE = { "www-authenticate": 'Bearer realm="bitvelocity"' };

/**
 * The access token of a request, or a 401 problem. A token past its `exp` is refused here although the
 * verifier allows clocks a minute of skew: the connection would be closed for expiry the moment it opened
 * (and an EventSource would reconnect every 2 s until the skew ran out).
 */
async function authenticate(c: Context, verifier: TokenVerifier, now: () => number): Promise<Principal> {
  const header = c.req.header("authorization");
  const token = header !== undefined ? BEARER.exec(header)?.[1] : c.req.query("access_token");
  if (!token) {
    throw new ProblemError(
      "AUTH.UNAUTHENTICATED",
      'Send an access token as "Authorization: Bearer <token>" or as the "access_token" query parameter',
      { headers: WWW_AUTHENTICATE },
    );
  }
  return unexpired(await verifier.verify(token), now);
}

/** A problem response; a 401 also says how to authenticate (RFC 6750). */
function problem(error: unknown, instance: string): Response {
  const response = errorToResponse(error, instance);
  if (response.status === 401 && !response.headers.has("www-authenticate")) {
    response.headers.set("www-authenticate", 'Bearer realm="bitvelocity", error="invalid_token"');
  }
  return response;
}

/** Creates the two routes over one hub. */
export function createNotificationRoutes(deps: NotificationRoutesDeps): NotificationRoutes {
  const { hub, verifier, limits, sql } = deps;
  const now = deps.now ?? Date.now;
  const sockets = new Set<OrderSocket>();
  let sseStreams = 0;
  /** Aborted by `closeAll` or by the shutdown signal of the service app the routes are mounted on. */
  const shutdown = new AbortController();
  const followed = new WeakSet<AbortSignal>();
  /** Ends the SSE streams as soon as the server is about to drain, not at `closeAll` (which comes after). */
  const follow = (appShutdown: AbortSignal) => {
    if (followed.has(appShutdown)) return;
    followed.add(appShutdown);
    if (appShutdown.aborted) shutdown.abort();
    else appShutdown.addEventListener("abort", () => shutdown.abort(), { once: true });
  };
  const routes = new Hono();
  const shuttingDown = () =>
    new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", "The server is shutting down; reconnect", {
      headers: { "retry-after": "1" },
    });
  const tooMany = (what: string, max: number) =>
    new ProblemError("COMMON.RATE_LIMITED", `This server holds at most ${max} ${what}; retry in a few seconds`, {
      headers: { "retry-after": "5" },
    });

  routes.get("/ws/orders", async (c) => {
    const instance = new URL(c.req.url).pathname;
    follow(shutdownSignalOf(c));
    try {
      // Authentication first, so a client without a token learns that before anything else.
      const principal = await authenticate(c, verifier, now);
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
        throw new ProblemError(
          "COMMON.VALIDATION_FAILED",
          'Open /ws/orders with a WebSocket client ("Upgrade: websocket")',
        );
      }
      if (shutdown.signal.aborted) throw shuttingDown();
      if (sockets.size >= limits.socketsMax) throw tooMany("WebSockets", limits.socketsMax);
      let connection: OrderSocket | undefined;
      return await upgradeWebSocket(c, {
        onOpen: (_event, ws) => {
          connection = new OrderSocket({
            socket: ws.raw as WebSocket,
            principal,
            verifier,
            sql,
            hub,
            limits,
            now,
            onClosed: () => sockets.delete(connection!),
          });
          sockets.add(connection);
          connection.open();
        },
        onMessage: (event) => connection?.receive(event.data),
        onClose: () => connection?.released(),
        onError: () => connection?.released(),
      }, { idleTimeout: deps.idleTimeoutSec ?? 30 }).catch((error) => {
        // Deno refuses a malformed handshake (no Sec-WebSocket-Key, …) with a TypeError: the client's fault.
        if (!(error instanceof TypeError)) throw error;
        throw new ProblemError("COMMON.VALIDATION_FAILED", `Bad WebSocket handshake: ${error.message}`);
      });
    } catch (error) {
      return problem(error, instance);
    }
  });

  routes.get("/sse/orders/:id", async (c) => {
    const instance = new URL(c.req.url).pathname;
    follow(shutdownSignalOf(c));
    try {
      const principal = await authenticate(c, verifier, now);
      const orderId = orderIdSchema.safeParse(c.req.param("id"));
      if (!orderId.success) {
        throw new ProblemError("ECOMMERCE.ORDER_NOT_FOUND", `Order "${c.req.param("id").slice(0, 64)}" was not found`);
      }
      const lastEventId = c.req.header("last-event-id");
      const after = lastEventId === undefined ? "0" : eventIdSchema.safeParse(lastEventId.trim());
      if (typeof after !== "string" && !after.success) {
        throw new ProblemError(
          "COMMON.VALIDATION_FAILED",
          `Last-Event-ID "${lastEventId!.slice(0, 40)}" is not an event id; send the id of the last event you got`,
        );
      }
      const latest = await latestNotification(sql, { kind: "order", orderId: orderId.data });
      if (latest && latest.userId !== principal.userId && !principal.roles.includes("ADMIN")) {
        // Someone else's order answers like a missing one, so its existence is not confirmed.
        throw new ProblemError("ECOMMERCE.ORDER_NOT_FOUND", `Order "${orderId.data}" was not found`);
      }
      if (shutdown.signal.aborted) throw shuttingDown();
      if (sseStreams >= limits.sseStreamsMax) throw tooMany("SSE streams", limits.sseStreamsMax);
      sseStreams++;
      return streamSSE(c, async (stream) => {
        try {
          await serveOrderSse({
            stream,
            signal: c.req.raw.signal,
            shutdown: shutdown.signal,
            hub,
            principal,
            orderId: orderId.data,
            after: typeof after === "string" ? after : after.data,
            heartbeatMs: deps.heartbeatMs,
            sendBufferBytesMax: limits.sendBufferBytesMax,
            now,
          });
        } finally {
          sseStreams--;
        }
      });
    } catch (error) {
      return problem(error, instance);
    }
  });

  return {
    routes,
    connections: () => ({ sockets: sockets.size, sseStreams }),
    closeAll: () => {
      shutdown.abort();
      for (const socket of [...sockets]) {
        socket.close(CLOSE_CODES.GOING_AWAY, "The server is shutting down; reconnect and resume from your last id");
      }
    },
  };
}
