/**
 * @module
 * The wire protocol of `/ws/orders` and `/sse/orders/{id}`: the frames a client may send, the frames it
 * receives, the stable error codes of error frames, the close codes, and the limits. Documented in
 * README.md; clients branch on `code`, never on `message`.
 */
import { z } from "zod";
import type { Principal } from "../../../shared/auth/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";

/** Bounds of the notification service; every one has a named default. */
export interface NotificationLimits {
  /** Largest client frame; a bigger one closes the socket with 1009. @default 4096 */
  readonly frameBytesMax: number;
  /** Subscriptions one WebSocket may hold at once. @default 50 */
  readonly subscriptionsPerSocketMax: number;
  /** Open WebSockets per process; more are refused with 429 before the upgrade. @default 10000 */
  readonly socketsMax: number;
  /** Open SSE streams per process; more are refused with 429. @default 10000 */
  readonly sseStreamsMax: number;
  /**
   * Bytes queued for one client and not yet taken by its connection; past this the client is too slow and
   * is disconnected (it resumes from its last event id). @default 1 MiB
   */
  readonly sendBufferBytesMax: number;
  /** Events sent on a WebSocket and not acknowledged; at the limit delivery pauses until an ack. @default 256 */
  readonly unackedEventsMax: number;
  /** Client frames received and not handled yet; more closes the socket with 1008. @default 32 */
  readonly pendingFramesMax: number;
  /** Rows read per catch-up query. @default 100 */
  readonly replayPageSize: number;
}

export const DEFAULT_LIMITS: NotificationLimits = Object.freeze({
  frameBytesMax: 4096,
  subscriptionsPerSocketMax: 50,
  socketsMax: 10_000,
  sseStreamsMax: 10_000,
  sendBufferBytesMax: 1024 * 1024,
  unackedEventsMax: 256,
  pendingFramesMax: 32,
  replayPageSize: 100,
});

/** WebSocket close codes the server uses (RFC 6455 section 7.4 plus application codes 4000–4999). */
export const CLOSE_CODES = Object.freeze({
  /** The server is shutting down; reconnect (to another instance) and resume. */
  GOING_AWAY: 1001,
  /** Too many frames in flight from the client. */
  POLICY_VIOLATION: 1008,
  /** A client frame over `frameBytesMax`. */
  MESSAGE_TOO_BIG: 1009,
  /** The access token expired (or a re-auth named another user); reconnect with a fresh token. */
  TOKEN_EXPIRED: 4401,
  /** The client read too slowly and its send buffer passed `sendBufferBytesMax`; reconnect and resume. */
  SLOW_CONSUMER: 4429,
});

/**
 * Codes of error frames. The first ones are the platform's problem codes with the same meaning; the
 * `NOTIFICATIONS.*` ones exist only on this protocol.
 */
export type FrameErrorCode =
  | "COMMON.MALFORMED_JSON"
  | "COMMON.VALIDATION_FAILED"
  | "COMMON.CONFLICT"
  | "AUTH.TOKEN_INVALID"
  | "AUTH.TOKEN_EXPIRED"
  | "AUTH.FORBIDDEN"
  | "ECOMMERCE.ORDER_NOT_FOUND"
  | "NOTIFICATIONS.UNKNOWN_TYPE"
  | "NOTIFICATIONS.UNKNOWN_SUBSCRIPTION"
  | "NOTIFICATIONS.TOO_MANY_SUBSCRIPTIONS"
  | "NOTIFICATIONS.UNKNOWN_EVENT";

/** The one personal channel: every order event of the signed-in user. */
export const PERSONAL_CHANNEL = "mine";

/** Order ids as the order events carry them; ":" is excluded because channels are `order:<id>`. */
export const orderIdSchema = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_', '-'");

/** A stream position: the decimal `id` of an event frame (or SSE `id:`); "0" means "from the start". */
export const eventIdSchema = z.string().regex(/^(0|[1-9][0-9]{0,17})$/, 'a decimal event id such as "42"');

const target = {
  orderId: orderIdSchema.optional(),
  channel: z.literal(PERSONAL_CHANNEL).optional(),
};
const oneTarget = (frame: { orderId?: string; channel?: string }) =>
  (frame.orderId === undefined) !== (frame.channel === undefined);
const oneTargetMessage = { message: `give either "orderId" or "channel": "${PERSONAL_CHANNEL}"` };

/** Every frame a client may send, by `type`. */
export const clientFrameSchemas = {
  subscribe: z.strictObject({ type: z.literal("subscribe"), ...target, after: eventIdSchema.optional() })
    .refine(oneTarget, oneTargetMessage),
  unsubscribe: z.strictObject({ type: z.literal("unsubscribe"), ...target }).refine(oneTarget, oneTargetMessage),
  ack: z.strictObject({ type: z.literal("ack"), id: eventIdSchema }),
  auth: z.strictObject({ type: z.literal("auth"), token: z.string().min(1).max(8192) }),
  ping: z.strictObject({ type: z.literal("ping") }),
} as const;

export type ClientFrameType = keyof typeof clientFrameSchemas;
export type ClientFrame = { [K in ClientFrameType]: z.infer<(typeof clientFrameSchemas)[K]> }[ClientFrameType];

/** The channel name of a subscription target. */
export function channelOf(frame: { readonly orderId?: string }): string {
  return frame.orderId === undefined ? PERSONAL_CHANNEL : `order:${frame.orderId}`;
}

/** One order event as clients receive it (WebSocket `event` frame, SSE `data`). */
export interface OrderEventView {
  /** Stream position, for `after`, `Last-Event-ID` and acks. */
  readonly id: string;
  readonly orderId: string;
  /** 1, 2, 3 … per order. */
  readonly seq: number;
  /** The envelope's event id (UUID), for correlation with the order service. */
  readonly eventId: string;
  readonly eventType: string;
  readonly status: string;
  readonly occurredAt: string;
}

/** Frames the server sends on the WebSocket. */
export type ServerFrame =
  | {
    readonly type: "welcome";
    readonly userId: string;
    readonly expiresAt: string;
    readonly limits: { readonly frameBytesMax: number; readonly subscriptionsMax: number; readonly unackedMax: number };
  }
  | { readonly type: "subscribed"; readonly channel: string; readonly status: string | null; readonly after: string }
  | { readonly type: "unsubscribed"; readonly channel: string }
  | ({ readonly type: "event"; readonly channel: string } & OrderEventView)
  | { readonly type: "authenticated"; readonly expiresAt: string }
  | { readonly type: "pong" }
  | { readonly type: "error"; readonly code: FrameErrorCode; readonly message: string; readonly channel?: string };

/** `principal`, or the 401 `AUTH.TOKEN_EXPIRED` when its token's `exp` has passed. */
export function unexpired(principal: Principal, now: () => number): Principal {
  if (principal.expiresAt * 1000 > now()) return principal;
  throw new ProblemError("AUTH.TOKEN_EXPIRED", "The access token has expired; refresh it and retry", {
    headers: { "www-authenticate": 'Bearer realm="bitvelocity", error="invalid_token"' },
  });
}
