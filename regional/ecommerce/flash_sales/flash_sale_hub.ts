/**
 * @module
 * The SSE hub of one process: it subscribes to the region's cache pub/sub channel and pushes every
 * numbered broadcast to its `/sse/flash-sales` clients. Several processes of a region each run one, so all
 * of the region's subscribers hear every start and end.
 *
 * Ordering and gaps: a broadcast numbered `lastSeq + 1` goes out at once; any other jump (a lost pub/sub
 * message, two broadcasters publishing out of order) is filled from the broadcast log in SQL, which is
 * also read every `catchUpIntervalMs` as a safety net (Redis pub/sub is at most once). Each client keeps
 * the last number it was sent, so it never gets a number twice or out of order.
 *
 * Streams are plain `ReadableStream`s rather than Hono's `streamSSE`: one frame is encoded once and the
 * same bytes are enqueued to every client (fan-out to thousands), and the stream's `cancel` plus the
 * request's abort signal both free a client (honojs/hono#1770: `onAbort` alone may not fire).
 *
 * The same broadcasts go to `/ws/flash-sales` WebSockets (receive-only; one JSON text built once per
 * broadcast for every socket; a socket whose send buffer passes 1 MiB is closed with 4429 and resumes with
 * `?lastEventId=`, whether the bytes piled up from broadcasts or from error replies to frames it sends
 * without reading). SSE is the seed's channel for flash sales; the socket serves clients that already live
 * on WebSockets (docs/ARCHITECTURE.md, "Flash sales on a receive-only WebSocket too").
 *
 * The streams limit counts upgrades still waiting for their socket to open, so a burst of simultaneous
 * handshakes cannot overshoot it.
 *
 * When the server is about to shut down (the service app's shutdown signal) every SSE stream gets a last
 * `: shutting down` comment and ends, since the server's drain waits for open responses; the client resumes
 * elsewhere with Last-Event-ID. WebSockets do not hold the drain up (Deno detaches them); `close()` ends them.
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { type Broadcast, parseBroadcast, readBroadcastsAfter, readLatestBroadcasts } from "./broadcast_log.ts";

export interface FlashSaleHubOptions {
  readonly sql: Sql;
  readonly cache: Cache;
  /** The region's pub/sub channel. */
  readonly channel: string;
  /** Broadcasts kept for `Last-Event-ID` resume. @default 100 */
  readonly recentEventsMax?: number;
  /** Open streams at most in this process; more are refused with 429. @default 10000 */
  readonly subscribersMax?: number;
  /** Comment frames on idle streams, so proxies keep them open and dead clients are found. @default 15000 */
  readonly heartbeatMs?: number;
  /** Safety-net read of the broadcast log. @default 5000 */
  readonly catchUpIntervalMs?: number;
  /** Frames queued for a client that does not read; past it the stream is closed (it resumes). @default 256 */
  readonly subscriberQueueMax?: number;
  /** The reconnect delay sent to clients (`retry:`). @default 2000 */
  readonly retryMs?: number;
}

export interface FlashSaleHub {
  /** Open streams in this process. */
  subscribers(): number;
  /** The newest broadcast number this hub has pushed (0 before any). */
  lastSeq(): number;
  /**
   * Opens a client stream, resuming after `lastEventId` when given, that ends when `shutdown` (the server's)
   * aborts; throws a 429 problem when full, 503 once closed or shutting down.
   */
  open(request: {
    readonly lastEventId?: string | null;
    readonly signal: AbortSignal;
    readonly shutdown?: AbortSignal;
  }): Response;
  /** Open WebSockets in this process. */
  sockets(): number;
  /**
   * Upgrades `request` to a receive-only WebSocket resuming after `lastEventId`; 429 problem when full, 400
   * (`COMMON.VALIDATION_FAILED`) for a malformed handshake.
   */
  openSocket(request: Request, lastEventId: string | null | undefined): Response;
  /** Ends every stream and stops listening. */
  close(): Promise<void>;
}

interface Subscriber {
  readonly controller: ReadableStreamDefaultController<Uint8Array>;
  /** The number of the last broadcast enqueued for this client (or its Last-Event-ID). */
  lastSentSeq: number;
  /** Detaches the stream from its shutdown signal, which outlives it. */
  readonly detach: () => void;
}

interface Frame {
  readonly seq: number;
  readonly bytes: Uint8Array;
  /** The WebSocket text of the same broadcast. */
  readonly text: string;
}

interface SocketSubscriber {
  readonly socket: WebSocket;
  lastSentSeq: number;
  /** Upgraded but not open yet: counted in `pendingSockets` until it opens, closes or fails. */
  pending: boolean;
}

/** A socket whose unsent bytes pass this is not reading: closed (4429), it resumes with lastEventId. */
export const SOCKET_BUFFER_BYTES_MAX = 1024 * 1024;
/** Close codes of `/ws/flash-sales`. */
export const FLASH_SALE_CLOSE_CODES = Object.freeze({ GOING_AWAY: 1001, TOO_SLOW: 4429 });
/** The one answer to any client frame (the socket is receive-only), built once. */
const CLIENT_FRAME_REPLY = JSON.stringify({
  type: "error",
  code: "COMMON.VALIDATION_FAILED",
  message: "This socket only receives flash sale events; send nothing",
});
/** Seconds without a pong before Deno drops a silent socket (it pings in between). */
const SOCKET_IDLE_TIMEOUT_SEC = 30;

/** Rows read per catch-up query. */
const CATCH_UP_BATCH = 1_000;
const encoder = new TextEncoder();
const HEARTBEAT = encoder.encode(": heartbeat\n\n");
/** SSE has no event for "reconnect elsewhere"; the comment says why the stream ends. */
const SHUTTING_DOWN = encoder.encode(": shutting down; reconnect with Last-Event-ID\n\n");
/** The shutdown signal of a stream opened without one: nothing aborts it. */
const NEVER = new AbortController().signal;

/** Starts a hub: loads the recent broadcasts (for resume), then listens on the region channel. */
export async function startFlashSaleHub(options: FlashSaleHubOptions): Promise<FlashSaleHub> {
  const recentMax = positiveInt("recentEventsMax", options.recentEventsMax ?? 100);
  const subscribersMax = positiveInt("subscribersMax", options.subscribersMax ?? 10_000);
  const heartbeatMs = positiveInt("heartbeatMs", options.heartbeatMs ?? 15_000);
  const catchUpIntervalMs = positiveInt("catchUpIntervalMs", options.catchUpIntervalMs ?? 5_000);
  const queueMax = positiveInt("subscriberQueueMax", options.subscriberQueueMax ?? 256);
  const retryMs = positiveInt("retryMs", options.retryMs ?? 2_000);
  if (queueMax <= recentMax) {
    // A resume replays up to recentEventsMax frames at once; that must not look like a stuck client.
    throw new RangeError(`subscriberQueueMax (${queueMax}) must exceed recentEventsMax (${recentMax})`);
  }
  const subscribers = new Set<Subscriber>();
  const sockets = new Set<SocketSubscriber>();
  /** Upgrades answered whose sockets have not opened yet; they hold a place under subscribersMax. */
  let pendingSockets = 0;
  const recent: Frame[] = [];
  let lastSeq = 0;
  let closed = false;
  let catchingUp: Promise<void> | undefined;
  let catchUpAgain = false;

  function deliver(broadcast: Broadcast): void {
    if (broadcast.seq <= lastSeq) return;
    lastSeq = broadcast.seq;
    const frame = { seq: broadcast.seq, bytes: encoder.encode(frameText(broadcast)), text: socketText(broadcast) };
    recent.push(frame);
    if (recent.length > recentMax) recent.splice(0, recent.length - recentMax);
    for (const subscriber of subscribers) {
      if (frame.seq > subscriber.lastSentSeq) send(subscriber, frame.bytes, frame.seq);
    }
    for (const subscriber of sockets) {
      if (frame.seq > subscriber.lastSentSeq) sendSocket(subscriber, frame);
    }
  }

  function sendSocket(subscriber: SocketSubscriber, frame: Frame): void {
    if (sendSocketText(subscriber, frame.text)) subscriber.lastSentSeq = frame.seq;
  }

  /**
   * Sends `text` unless the socket is gone or not reading (over SOCKET_BUFFER_BYTES_MAX unsent: closed with
   * 4429, it resumes with lastEventId). Every send goes through here, replies included, so no client can
   * grow the buffer past the bound. False when nothing was sent.
   */
  function sendSocketText(subscriber: SocketSubscriber, text: string): boolean {
    const { socket } = subscriber;
    if (socket.readyState !== WebSocket.OPEN) {
      sockets.delete(subscriber);
      return false;
    }
    if (socket.bufferedAmount > SOCKET_BUFFER_BYTES_MAX) {
      sockets.delete(subscriber);
      log.warn("flash sale socket closed: client is not reading", { bufferedBytes: socket.bufferedAmount });
      socket.close(FLASH_SALE_CLOSE_CODES.TOO_SLOW, "Too slow; reconnect with lastEventId");
      return false;
    }
    socket.send(text);
    return true;
  }

  /** Gives back the place a socket held while its upgrade was pending (once, whichever event comes first). */
  function settle(subscriber: SocketSubscriber): void {
    if (!subscriber.pending) return;
    subscriber.pending = false;
    pendingSockets--;
  }

  function refuseWhenFull(shutdown: AbortSignal = NEVER): void {
    if (closed || shutdown.aborted) {
      throw new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", "The flash sale stream is shutting down; retry");
    }
    if (subscribers.size + sockets.size + pendingSockets >= subscribersMax) {
      throw new ProblemError(
        "COMMON.RATE_LIMITED",
        `This server already holds ${subscribersMax} flash sale streams; retry in a few seconds`,
        { headers: { "retry-after": "5" } },
      );
    }
  }

  function send(subscriber: Subscriber, bytes: Uint8Array, seq?: number): void {
    const { controller } = subscriber;
    if ((controller.desiredSize ?? 0) <= 0) {
      // Not reading: close rather than buffer without bound. It reconnects and resumes with Last-Event-ID.
      log.warn("flash sale stream closed: client is not reading", { queued: queueMax });
      drop(subscriber, true);
      return;
    }
    try {
      controller.enqueue(bytes);
      if (seq !== undefined) subscriber.lastSentSeq = seq;
    } catch {
      // The stream was cancelled between the client leaving and our hearing of it.
      drop(subscriber, false);
    }
  }

  function drop(subscriber: Subscriber, closeStream: boolean): void {
    if (!subscribers.delete(subscriber)) return;
    subscriber.detach();
    if (!closeStream) return;
    try {
      subscriber.controller.close();
    } catch {
      // Already closed or errored: nothing left to free.
    }
  }

  /** Reads the log after `lastSeq` until it is exhausted; concurrent calls share one run. */
  function catchUp(): Promise<void> {
    if (catchingUp) {
      catchUpAgain = true;
      return catchingUp;
    }
    catchingUp = (async () => {
      do {
        catchUpAgain = false;
        const rows = await readBroadcastsAfter(options.sql, lastSeq, CATCH_UP_BATCH);
        for (const row of rows) deliver(row);
        if (rows.length === CATCH_UP_BATCH) catchUpAgain = true;
      } while (catchUpAgain && !closed);
    })()
      .catch((error) => log.warn("flash sale hub could not read the broadcast log", { error: String(error) }))
      .finally(() => {
        catchingUp = undefined;
      });
    return catchingUp;
  }

  for (const row of await readLatestBroadcasts(options.sql, recentMax)) deliver(row);
  const unsubscribe = await options.cache.subscribe(options.channel, (message) => {
    if (closed) return;
    const broadcast = parseBroadcast(message);
    if (!broadcast) {
      log.warn("flash sale hub ignored a message that is not a broadcast", { channel: options.channel });
      return;
    }
    if (broadcast.seq <= lastSeq) return;
    if (broadcast.seq === lastSeq + 1 && !catchingUp) deliver(broadcast);
    else void catchUp();
  });
  const heartbeat = setInterval(() => {
    for (const subscriber of subscribers) send(subscriber, HEARTBEAT);
  }, heartbeatMs);
  const safetyNet = setInterval(() => void catchUp(), catchUpIntervalMs);

  return {
    subscribers: () => subscribers.size,
    lastSeq: () => lastSeq,
    sockets: () => sockets.size,
    openSocket(request, lastEventId) {
      refuseWhenFull();
      const { socket, response } = upgrade(request);
      const subscriber: SocketSubscriber = {
        socket,
        lastSentSeq: parseLastEventId(lastEventId) ?? lastSeq,
        pending: true,
      };
      pendingSockets++;
      socket.onopen = () => {
        settle(subscriber);
        if (closed) return socket.close(FLASH_SALE_CLOSE_CODES.GOING_AWAY, "Shutting down; reconnect");
        sockets.add(subscriber);
        for (const frame of recent) {
          if (frame.seq > subscriber.lastSentSeq) sendSocket(subscriber, frame);
        }
      };
      // Receive-only: whatever a client sends gets one error frame and the socket stays up, unless the
      // client does not read those replies either (then the send buffer bound closes it, 4429).
      socket.onmessage = () => void sendSocketText(subscriber, CLIENT_FRAME_REPLY);
      const leave = () => {
        settle(subscriber);
        sockets.delete(subscriber);
      };
      socket.onclose = leave;
      socket.onerror = leave;
      return response;
    },
    open({ lastEventId, signal, shutdown = NEVER }) {
      refuseWhenFull(shutdown);
      const resumeAfter = parseLastEventId(lastEventId);
      let subscriber: Subscriber | undefined;
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          const goodbye = () => {
            // A reader past its queue bound is dropped as ever; the others read the comment, then the end.
            send(subscriber!, SHUTTING_DOWN);
            drop(subscriber!, true);
          };
          const detach = () => shutdown.removeEventListener("abort", goodbye);
          subscriber = { controller, lastSentSeq: resumeAfter ?? lastSeq, detach };
          controller.enqueue(encoder.encode(`retry: ${retryMs}\n: connected\n\n`));
          // Replays what the client missed; a number older than the buffer gets everything still kept.
          for (const frame of recent) {
            if (frame.seq > subscriber.lastSentSeq) send(subscriber, frame.bytes, frame.seq);
          }
          subscribers.add(subscriber);
          shutdown.addEventListener("abort", goodbye, { once: true });
        },
        cancel: () => {
          if (subscriber) drop(subscriber, false);
        },
      }, new CountQueuingStrategy({ highWaterMark: queueMax }));
      const leave = () => subscriber && drop(subscriber, true);
      if (signal.aborted) leave();
      else signal.addEventListener("abort", leave, { once: true });
      return new Response(stream, {
        headers: {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache, no-transform",
          // Reverse proxies (nginx) must not buffer an event stream.
          "x-accel-buffering": "no",
        },
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      clearInterval(safetyNet);
      for (const subscriber of [...subscribers]) drop(subscriber, true);
      for (const { socket } of [...sockets]) {
        socket.close(FLASH_SALE_CLOSE_CODES.GOING_AWAY, "Shutting down; reconnect");
      }
      sockets.clear();
      await unsubscribe().catch((error) => log.warn("flash sale hub unsubscribe failed", { error: String(error) }));
      await catchingUp;
    },
  };
}

/**
 * Upgrades the request; Deno refuses a malformed handshake (no `Connection: Upgrade`, no
 * `Sec-WebSocket-Key`, …) with a TypeError, which is the client's fault: a 400 problem, not a 500.
 */
function upgrade(request: Request): { socket: WebSocket; response: Response } {
  try {
    return Deno.upgradeWebSocket(request, { idleTimeout: SOCKET_IDLE_TIMEOUT_SEC });
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    throw new ProblemError("COMMON.VALIDATION_FAILED", `Bad WebSocket handshake: ${error.message}`, { cause: error });
  }
}

/** One SSE frame; JSON never contains a raw newline, so `data` fits one line. */
function frameText(broadcast: Broadcast): string {
  return `id: ${broadcast.seq}\nevent: ${broadcast.event}\ndata: ${JSON.stringify(broadcast.data)}\n\n`;
}

/** One WebSocket text frame: the SSE frame's fields as JSON. */
function socketText(broadcast: Broadcast): string {
  return JSON.stringify({ type: broadcast.event, id: String(broadcast.seq), data: broadcast.data });
}

/** A Last-Event-ID we issued is a positive decimal integer; anything else means "no resume". */
function parseLastEventId(value: string | null | undefined): number | null {
  if (!value || !/^[1-9][0-9]{0,15}$/.test(value.trim())) return null;
  const seq = Number(value.trim());
  return Number.isSafeInteger(seq) ? seq : null;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`startFlashSaleHub() ${name} must be a positive integer, got ${value}`);
  }
  return value;
}
