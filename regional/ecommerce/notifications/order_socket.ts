/**
 * @module
 * One `/ws/orders` connection: its frames (subscribe, unsubscribe, ack, auth, ping), its subscriptions in
 * the hub, its ack window, its send buffer bound and its token's expiry. Frames are handled one at a time
 * in arrival order; a bad frame gets an error frame and the connection stays up.
 */
import { z } from "zod";
import type { Principal, TokenVerifier } from "../../../shared/auth/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import type { HubSubscription, NotificationHub, NotificationSink } from "./hub.ts";
import { type ChannelKey, latestNotification, type StoredNotification } from "./notification_store.ts";
import {
  channelOf,
  type ClientFrame,
  clientFrameSchemas,
  CLOSE_CODES,
  type FrameErrorCode,
  type NotificationLimits,
  type ServerFrame,
  unexpired,
} from "./protocol.ts";

/** The parts of a server-side WebSocket the connection uses. */
export interface SocketLike {
  send(text: string): void;
  close(code: number, reason: string): void;
  readonly bufferedAmount: number;
}

export interface OrderSocketDeps {
  readonly socket: SocketLike;
  readonly principal: Principal;
  readonly verifier: TokenVerifier;
  readonly sql: Sql;
  readonly hub: NotificationHub;
  readonly limits: NotificationLimits;
  /** Called once when the connection is closed, whoever closed it. */
  readonly onClosed: () => void;
  /** @default Date.now */
  readonly now?: () => number;
}

/** setTimeout's largest delay; a longer token lifetime is re-armed in steps. */
const TIMER_MS_MAX = 2 ** 31 - 1;
const encoder = new TextEncoder();

export class OrderSocket implements NotificationSink {
  readonly #deps: OrderSocketDeps;
  #principal: Principal;
  #closed = false;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #pending = 0;
  #queue: Promise<void> = Promise.resolve();
  readonly #subscriptions = new Map<string, HubSubscription>();
  /** Ids sent and not acknowledged yet, in send order. */
  readonly #unacked: string[] = [];
  #highestSentId = 0n;

  constructor(deps: OrderSocketDeps) {
    this.#deps = deps;
    this.#principal = deps.principal;
  }

  /** Greets the client and arms the token expiry. */
  open(): void {
    const { limits } = this.#deps;
    this.#send({
      type: "welcome",
      userId: this.#principal.userId,
      expiresAt: new Date(this.#principal.expiresAt * 1000).toISOString(),
      limits: {
        frameBytesMax: limits.frameBytesMax,
        subscriptionsMax: limits.subscriptionsPerSocketMax,
        unackedMax: limits.unackedEventsMax,
      },
    });
    this.#armExpiry();
  }

  /** A frame arrived: size and backlog are checked at once, the content in arrival order. */
  receive(data: unknown): void {
    if (this.#closed) return;
    const { limits } = this.#deps;
    const text = typeof data === "string" ? data : null;
    const bytes = text !== null
      ? (text.length * 3 <= limits.frameBytesMax ? text.length : encoder.encode(text).byteLength)
      : data instanceof ArrayBuffer
      ? data.byteLength
      : ArrayBuffer.isView(data)
      ? data.byteLength
      : data instanceof Blob
      ? data.size
      : 0;
    if (bytes > limits.frameBytesMax) {
      this.close(CLOSE_CODES.MESSAGE_TOO_BIG, `Frames are limited to ${limits.frameBytesMax} bytes`);
      return;
    }
    if (this.#pending > 0 && text !== null && isImmediateFrame(text)) {
      // Acks and pings touch only this connection's own state and wait on nothing, so they need not queue
      // behind a subscribe that waits on the database: handled now, they never take a slot (a client acking a
      // burst of events while a subscribe is pending was closed with 1008 after 32 of them).
      this.#handle(text);
      return;
    }
    if (this.#pending >= limits.pendingFramesMax) {
      this.close(
        CLOSE_CODES.POLICY_VIOLATION,
        `More than ${limits.pendingFramesMax} frames in flight; wait for replies`,
      );
      return;
    }
    if (this.#pending === 0) {
      // Nothing is waiting: handle it now. Acks (a client acks every event, so a burst of events brings a burst
      // of acks) finish without waiting on anything and never take a slot; counted against
      // `pendingFramesMax`, a burst of 256 of them closed well-behaved clients (bench order_to_websocket).
      let work: Promise<void> | void;
      try {
        work = this.#handle(text);
      } catch (error) {
        work = Promise.reject(error);
      }
      if (work instanceof Promise) this.#track(work);
      return;
    }
    this.#track(this.#queue.then(() => this.#handle(text)));
  }

  /** Holds the frame queue until `work` settles (frames are handled in arrival order). */
  #track(work: Promise<void>): void {
    this.#pending++;
    this.#queue = work
      .catch((error) => {
        log.error("order socket frame failed", { error: String(error), stack: (error as Error)?.stack });
        this.#error("COMMON.VALIDATION_FAILED", "The frame could not be handled; it was logged");
      })
      .finally(() => this.#pending--);
  }

  /** Closes the socket (idempotent) and frees its subscriptions. */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.released();
    try {
      this.#deps.socket.close(code, reason);
    } catch {
      // Already closing: the close event will arrive anyway.
    }
  }

  /** The socket is gone: free everything (called by the close event, and by close()). */
  released(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#expiryTimer);
    for (const subscription of this.#subscriptions.values()) this.#deps.hub.remove(subscription);
    this.#subscriptions.clear();
    this.#deps.onClosed();
  }

  // NotificationSink

  owner(): { userId: string; roles: readonly string[] } {
    return this.#principal;
  }

  canDeliver(): boolean {
    return !this.#closed && this.#unacked.length < this.#deps.limits.unackedEventsMax;
  }

  deliver(channel: string, notification: StoredNotification): void {
    const { userId: _owner, ...view } = notification;
    this.#unacked.push(notification.id);
    const id = BigInt(notification.id);
    if (id > this.#highestSentId) this.#highestSentId = id;
    this.#send({ type: "event", channel, ...view });
  }

  deny(channel: string): void {
    this.#subscriptions.delete(channel);
    this.#error("ECOMMERCE.ORDER_NOT_FOUND", `Order "${channel.slice("order:".length)}" was not found`, channel);
  }

  // Frames

  /** Handles a frame; returns a promise only for frames that wait on something (subscribe, auth). */
  #handle(text: string | null): Promise<void> | void {
    if (this.#closed) return;
    if (text === null) return this.#error("COMMON.MALFORMED_JSON", "Send text frames holding JSON");
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      return this.#error("COMMON.MALFORMED_JSON", `The frame is not valid JSON: ${(error as Error).message}`);
    }
    const type = (raw as { type?: unknown } | null)?.type;
    if (typeof type !== "string" || !Object.hasOwn(clientFrameSchemas, type)) {
      const known = Object.keys(clientFrameSchemas).join(", ");
      return this.#error(
        "NOTIFICATIONS.UNKNOWN_TYPE",
        `Unknown frame type "${String(type).slice(0, 40)}"; use one of ${known}`,
      );
    }
    const parsed = clientFrameSchemas[type as keyof typeof clientFrameSchemas].safeParse(raw);
    if (!parsed.success) {
      return this.#error("COMMON.VALIDATION_FAILED", `Bad "${type}" frame: ${z.prettifyError(parsed.error)}`);
    }
    const frame = parsed.data as ClientFrame;
    switch (frame.type) {
      case "subscribe":
        return this.#subscribe(frame);
      case "unsubscribe":
        return this.#unsubscribe(frame);
      case "ack":
        return this.#ack(frame.id);
      case "auth":
        return this.#reauthenticate(frame.token);
      case "ping":
        return this.#send({ type: "pong" });
    }
  }

  async #subscribe(frame: { orderId?: string; after?: string }): Promise<void> {
    const channel = channelOf(frame);
    if (this.#subscriptions.has(channel)) {
      return this.#error("COMMON.CONFLICT", `Already subscribed to "${channel}"; unsubscribe first`, channel);
    }
    const max = this.#deps.limits.subscriptionsPerSocketMax;
    if (this.#subscriptions.size >= max) {
      return this.#error("NOTIFICATIONS.TOO_MANY_SUBSCRIPTIONS", `At most ${max} subscriptions; unsubscribe one`);
    }
    const key: ChannelKey = frame.orderId !== undefined
      ? { kind: "order", orderId: frame.orderId }
      : { kind: "user", userId: this.#principal.userId };
    const latest = await latestNotification(this.#deps.sql, key);
    if (this.#closed) return;
    const owner = this.#principal;
    if (latest && latest.userId !== owner.userId && !owner.roles.includes("ADMIN")) {
      // The same answer as for an order that does not exist to anyone: strangers learn nothing more.
      return this.#error("ECOMMERCE.ORDER_NOT_FOUND", `Order "${frame.orderId}" was not found`, channel);
    }
    // An order subscription replays the order's short history by default; the personal channel starts now.
    const after = frame.after ?? (key.kind === "order" ? "0" : latest?.id ?? "0");
    this.#send({ type: "subscribed", channel, status: latest?.status ?? null, after });
    this.#subscriptions.set(channel, this.#deps.hub.add(this, channel, key, after));
  }

  #unsubscribe(frame: { orderId?: string }): void {
    const channel = channelOf(frame);
    const subscription = this.#subscriptions.get(channel);
    if (!subscription) {
      return this.#error("NOTIFICATIONS.UNKNOWN_SUBSCRIPTION", `Not subscribed to "${channel}"`, channel);
    }
    this.#deps.hub.remove(subscription);
    this.#subscriptions.delete(channel);
    this.#send({ type: "unsubscribed", channel });
  }

  /** Acks are cumulative in send order: acking an id acknowledges every event sent before it too. */
  #ack(id: string): void {
    const at = this.#unacked.indexOf(id);
    if (at >= 0) {
      const wasFull = !this.canDeliver();
      this.#unacked.splice(0, at + 1);
      if (wasFull) this.#deps.hub.wake(this);
      return;
    }
    // Acking an id acknowledged already is harmless; one never sent is a client bug worth reporting.
    if (BigInt(id) > this.#highestSentId) {
      this.#error("NOTIFICATIONS.UNKNOWN_EVENT", `Event "${id}" was not sent on this connection`);
    }
  }

  async #reauthenticate(token: string): Promise<void> {
    let principal: Principal;
    try {
      // The verifier allows a minute of clock skew past `exp`; a token already past it would close the
      // connection at once instead of keeping the current one in force.
      principal = unexpired(await this.#deps.verifier.verify(token), this.#deps.now ?? Date.now);
    } catch (error) {
      if (!(error instanceof ProblemError)) throw error;
      const code: FrameErrorCode = error.code === "AUTH.TOKEN_EXPIRED" ? "AUTH.TOKEN_EXPIRED" : "AUTH.TOKEN_INVALID";
      return this.#error(code, `${error.message}; the current token stays in force until it expires`);
    }
    if (this.#closed) return;
    if (principal.userId !== this.#principal.userId) {
      return this.#error("AUTH.FORBIDDEN", "The new token belongs to another user; open a new connection for it");
    }
    this.#principal = principal;
    this.#armExpiry();
    this.#send({ type: "authenticated", expiresAt: new Date(principal.expiresAt * 1000).toISOString() });
  }

  #armExpiry(): void {
    clearTimeout(this.#expiryTimer);
    const now = this.#deps.now ?? Date.now;
    const remainingMs = this.#principal.expiresAt * 1000 - now();
    if (remainingMs <= 0) {
      this.close(CLOSE_CODES.TOKEN_EXPIRED, "The access token expired; reconnect with a fresh token");
      return;
    }
    this.#expiryTimer = setTimeout(() => this.#armExpiry(), Math.min(remainingMs, TIMER_MS_MAX));
  }

  #error(code: FrameErrorCode, message: string, channel?: string): void {
    this.#send({ type: "error", code, message, ...(channel ? { channel } : {}) });
  }

  #send(frame: ServerFrame): void {
    if (this.#closed) return;
    const text = JSON.stringify(frame);
    const { socket, limits } = this.#deps;
    if (socket.bufferedAmount + text.length > limits.sendBufferBytesMax) {
      log.warn("order socket too slow; disconnected", { userId: this.#principal.userId });
      this.close(
        CLOSE_CODES.SLOW_CONSUMER,
        "Too slow: the send buffer is full; reconnect and resume from your last id",
      );
      return;
    }
    socket.send(text);
  }
}

/** True for a well-formed `ack` or `ping` frame: handled at once, even while other frames wait. */
function isImmediateFrame(text: string): boolean {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return false;
  }
  const type = (raw as { type?: unknown } | null)?.type;
  return (type === "ack" || type === "ping") && clientFrameSchemas[type].safeParse(raw).success;
}
