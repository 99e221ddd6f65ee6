/**
 * @module
 * One `/sse/orders/{id}` stream as a hub sink: `event: order` messages with `id:` = stream position (so the
 * browser's `Last-Event-ID` resumes it), heartbeat comments, an `event: error` message before the server
 * ends the stream (token expired, someone else's order, too slow), and everything freed as soon as the
 * client goes away. Hono's `onAbort` may not fire on every runtime (honojs/hono#1770), so the request's
 * abort signal ends the stream too. On shutdown the stream ends with a `: shutting down` comment and no
 * `event: error` (that would tell the client something is wrong with its request): the browser's
 * EventSource reconnects after `retry` and resumes with Last-Event-ID.
 */
import type { SSEStreamingApi } from "hono/streaming";
import type { Principal } from "../../../shared/auth/mod.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { HubSubscription, NotificationHub, NotificationSink } from "./hub.ts";
import type { StoredNotification } from "./notification_store.ts";
import type { FrameErrorCode } from "./protocol.ts";

export interface OrderSseOptions {
  readonly stream: SSEStreamingApi;
  /** The request's signal: aborted when the client disconnects. */
  readonly signal: AbortSignal;
  /** Aborted when the service shuts down: the stream says so and ends. */
  readonly shutdown: AbortSignal;
  readonly hub: NotificationHub;
  readonly principal: Principal;
  readonly orderId: string;
  /** Stream position to resume after ("0": the whole history of the order). */
  readonly after: string;
  readonly heartbeatMs: number;
  readonly sendBufferBytesMax: number;
  /** @default Date.now */
  readonly now?: () => number;
}

const TIMER_MS_MAX = 2 ** 31 - 1;
const encoder = new TextEncoder();

/** Serves the stream until the client leaves or the server ends it; resolves once everything is freed. */
export async function serveOrderSse(options: OrderSseOptions): Promise<void> {
  const { stream, hub, principal } = options;
  const channel = `order:${options.orderId}`;
  let pendingBytes = 0;
  let ended = false;
  let subscription: HubSubscription | undefined;
  let expiry: ReturnType<typeof setTimeout> | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => finish = resolve);

  const end = () => {
    if (ended) return;
    ended = true;
    if (subscription) hub.remove(subscription);
    clearInterval(heartbeat);
    clearTimeout(expiry);
    finish();
  };
  const write = (text: string) => {
    if (ended) return;
    const bytes = encoder.encode(text);
    if (pendingBytes + bytes.byteLength > options.sendBufferBytesMax) {
      log.warn("order SSE client too slow; disconnected", { userId: principal.userId, orderId: options.orderId });
      end();
      // Closing would wait behind the unread bytes; aborting drops the connection now.
      stream.abort();
      return;
    }
    pendingBytes += bytes.byteLength;
    // Writes queue in call order; each settles once the response stream has taken the bytes.
    void stream.write(bytes).finally(() => pendingBytes -= bytes.byteLength);
  };
  const endWithError = (code: FrameErrorCode, message: string) => {
    write(`event: error\ndata: ${JSON.stringify({ code, message })}\n\n`);
    end();
  };

  const sink: NotificationSink = {
    owner: () => principal,
    canDeliver: () => !ended,
    deliver: (_channel: string, notification: StoredNotification) => {
      const { userId: _owner, ...view } = notification;
      write(`id: ${notification.id}\nevent: order\ndata: ${JSON.stringify(view)}\n\n`);
    },
    deny: () => endWithError("ECOMMERCE.ORDER_NOT_FOUND", `Order "${options.orderId}" was not found`),
  };

  const goodbye = () => {
    write(": shutting down; reconnect with Last-Event-ID\n\n");
    end();
  };

  const heartbeat = setInterval(() => write(`: heartbeat\n\n`), options.heartbeatMs);
  stream.onAbort(end);
  if (options.signal.aborted) end();
  options.signal.addEventListener("abort", end, { once: true });
  if (options.shutdown.aborted) end();
  options.shutdown.addEventListener("abort", goodbye, { once: true });
  // The first bytes tell the client the stream is live; `retry` paces the browser's reconnects.
  write(`retry: 2000\n: connected\n\n`);
  const armExpiry = () => {
    // A stream already ended (its client left before it started) must leave no timer behind: nothing
    // would clear it, and it would hold the process until the token's expiry.
    if (ended) return;
    const remainingMs = principal.expiresAt * 1000 - (options.now ?? Date.now)();
    if (remainingMs <= 0) {
      return endWithError("AUTH.TOKEN_EXPIRED", "The access token expired; reconnect with a fresh token");
    }
    expiry = setTimeout(armExpiry, Math.min(remainingMs, TIMER_MS_MAX));
  };
  armExpiry();
  if (!ended) subscription = hub.add(sink, channel, { kind: "order", orderId: options.orderId }, options.after);
  try {
    await finished;
  } finally {
    options.signal.removeEventListener("abort", end);
    options.shutdown.removeEventListener("abort", goodbye);
  }
}
