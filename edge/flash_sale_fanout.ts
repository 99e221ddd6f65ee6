/**
 * @module
 * Flash-sale SSE fan-out at the edge: ONE upstream subscription per region (the region's
 * `/sse/flash-sales` through its ingress, resumed with `Last-Event-ID`) and any number of edge clients,
 * each attached to one region for the life of its stream (flash sales are per region). Each upstream
 * event is encoded once and the same bytes are queued to every client of that region.
 *
 * Ids: the edge sends `id: <region>:<region id>`, so a client's `Last-Event-ID` names the region it was
 * on. On reconnect the edge keeps it there while that region is healthy (see `resumeRegionOf`) and replays
 * from a bounded ring of that region's recent events: the frames with a larger number, like the region's
 * own hub does (an id older than the ring gets everything kept).
 *
 * Bounds: `clientsMax` streams (then 429), `clientQueueMax` frames queued per client (a client that does
 * not read is errored and freed, never buffered without bound; it reconnects and resumes), `recentEventsMax`
 * frames per region ring, heartbeats every `heartbeatMs`. A client is freed when its stream is cancelled
 * or its request's signal aborts (honojs/hono#1770: one of them may not fire).
 */
import { edgeProblem } from "./edge_problem.ts";
import { followEventStream, type FollowEventStreamOptions, type SseEvent } from "./sse_follower.ts";

/** Where each region serves its flash-sale stream. */
export const FLASH_SALES_PATH = "/sse/flash-sales";

export interface FlashSaleFanoutOptions {
  /** Streams held at once across regions; more are refused with 429. @default 20_000 */
  readonly clientsMax?: number;
  /**
   * Streams one client (the rate limiter's client id: its address by default) may hold at once; more are
   * refused with 429, so one client cannot take the whole `clientsMax`. @default 32
   */
  readonly clientStreamsMax?: number;
  /** Frames queued for one client; past it the client is disconnected. @default 256 */
  readonly clientQueueMax?: number;
  /** Recent events kept per region for `Last-Event-ID` resume. @default 100 */
  readonly recentEventsMax?: number;
  /** Comment frames to idle clients, so proxies keep streams open and dead clients are found. @default 15_000 */
  readonly heartbeatMs?: number;
  /** The reconnect delay sent to clients (`retry:`). @default 2000 */
  readonly retryMs?: number;
  /** Tuning of the upstream subscriptions (backoff, timeouts); tests shorten them. */
  readonly upstream?: Omit<FollowEventStreamOptions, "onEvent" | "onConnected" | "onDisconnected" | "lastEventId">;
}

export interface FlashSaleFanoutStats {
  readonly clients: Readonly<Record<string, number>>;
  readonly upstreamUp: Readonly<Record<string, boolean>>;
  readonly upstreamConnects: Readonly<Record<string, number>>;
  readonly events: number;
  readonly slowDropped: number;
  readonly refused: number;
}

export interface FlashSaleFanout {
  /** Opens one upstream subscription per region (idempotent). */
  start(): void;
  /** Ends every client stream and upstream subscription. */
  stop(): Promise<void>;
  /**
   * A client stream on `region`, resumed after `lastEventId` when it is that region's; 429 when the edge is
   * full or `clientId` already holds `clientStreamsMax` streams.
   */
  open(region: string, lastEventId: string | null, signal: AbortSignal, clientId?: string): Response;
  /** The region a `Last-Event-ID` sent by this edge names, if it is one of ours. */
  resumeRegionOf(lastEventId: string | null): string | undefined;
  /** Disconnects every client of `region` (it went unhealthy: they reconnect elsewhere); returns how many. */
  closeRegion(region: string): number;
  stats(): FlashSaleFanoutStats;
}

interface Frame {
  /** The region's id as a number, when it is one. */
  readonly seq: number | undefined;
  readonly bytes: Uint8Array;
}

interface Channel {
  readonly name: string;
  readonly url: URL;
  readonly clients: Set<ReadableStreamDefaultController<Uint8Array>>;
  readonly recent: Frame[];
  lastId: string | undefined;
  follower?: ReturnType<typeof followEventStream>;
}

const encoder = new TextEncoder();
const HEARTBEAT = encoder.encode(": heartbeat\n\n");
const SEQ = /^[0-9]{1,15}$/;

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`createFlashSaleFanout() ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** One SSE frame for clients; every data line is re-emitted, so multi-line data survives. */
function frameOf(region: string, event: SseEvent): Frame {
  let text = event.id === "" ? "" : `id: ${region}:${event.id}\n`;
  if (event.event !== "") text += `event: ${event.event}\n`;
  for (const line of event.data.split("\n")) text += `data: ${line}\n`;
  return { seq: SEQ.test(event.id) ? Number(event.id) : undefined, bytes: encoder.encode(text + "\n") };
}

export function createFlashSaleFanout(
  regions: readonly { readonly name: string; readonly url: string }[],
  options: FlashSaleFanoutOptions = {},
): FlashSaleFanout {
  const clientsMax = positiveInt("clientsMax", options.clientsMax ?? 20_000);
  const clientStreamsMax = positiveInt("clientStreamsMax", options.clientStreamsMax ?? 32);
  const queueMax = positiveInt("clientQueueMax", options.clientQueueMax ?? 256);
  const recentMax = positiveInt("recentEventsMax", options.recentEventsMax ?? 100);
  const heartbeatMs = positiveInt("heartbeatMs", options.heartbeatMs ?? 15_000);
  const retryMs = positiveInt("retryMs", options.retryMs ?? 2_000);
  if (queueMax <= recentMax) {
    // A resume queues up to recentEventsMax frames at once; that must not look like a stuck client.
    throw new RangeError(`clientQueueMax (${queueMax}) must exceed recentEventsMax (${recentMax})`);
  }
  const channels = new Map<string, Channel>(regions.map((region) => [region.name, {
    name: region.name,
    url: new URL(FLASH_SALES_PATH, region.url),
    clients: new Set(),
    recent: [],
    lastId: undefined,
  }]));
  const counters = { events: 0, slowDropped: 0, refused: 0 };
  let clientCount = 0;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  /** Streams per client id; an id leaves the map with its last stream, so it holds at most `clientsMax`. */
  const streamsByClient = new Map<string, number>();
  const ownerOf = new Map<ReadableStreamDefaultController<Uint8Array>, string>();

  function drop(channel: Channel, client: ReadableStreamDefaultController<Uint8Array>, reason?: string): void {
    if (!channel.clients.delete(client)) return;
    clientCount--;
    const owner = ownerOf.get(client);
    if (owner !== undefined) {
      ownerOf.delete(client);
      const left = (streamsByClient.get(owner) ?? 1) - 1;
      if (left > 0) streamsByClient.set(owner, left);
      else streamsByClient.delete(owner);
    }
    if (reason === undefined) return;
    try {
      // Erroring (not closing) discards the queued frames at once: the memory is freed now, not when drained.
      client.error(new Error(reason));
    } catch {
      // Already closed or errored.
    }
  }

  function send(channel: Channel, client: ReadableStreamDefaultController<Uint8Array>, bytes: Uint8Array): void {
    if ((client.desiredSize ?? 0) <= 0) {
      counters.slowDropped++;
      drop(channel, client, `client read too slowly (${queueMax} frames queued)`);
      return;
    }
    try {
      client.enqueue(bytes);
    } catch {
      // Cancelled between the client leaving and our hearing of it.
      drop(channel, client);
    }
  }

  function onUpstreamEvent(channel: Channel, event: SseEvent): void {
    if (event.id !== "") channel.lastId = event.id;
    const frame = frameOf(channel.name, event);
    counters.events++;
    channel.recent.push(frame);
    if (channel.recent.length > recentMax) channel.recent.splice(0, channel.recent.length - recentMax);
    for (const client of channel.clients) send(channel, client, frame.bytes);
  }

  function resumeSeq(channel: Channel, lastEventId: string | null): number | undefined {
    const prefix = `${channel.name}:`;
    if (lastEventId === null || !lastEventId.startsWith(prefix)) return undefined;
    const id = lastEventId.slice(prefix.length).trim();
    return SEQ.test(id) ? Number(id) : undefined;
  }

  return {
    start() {
      for (const channel of channels.values()) {
        channel.follower ??= followEventStream(channel.url, {
          ...options.upstream,
          lastEventId: () => channel.lastId,
          onEvent: (event) => onUpstreamEvent(channel, event),
        });
      }
      heartbeat ??= setInterval(() => {
        for (const channel of channels.values()) for (const client of channel.clients) send(channel, client, HEARTBEAT);
      }, heartbeatMs);
    },
    async stop() {
      if (heartbeat !== undefined) clearInterval(heartbeat);
      heartbeat = undefined;
      for (const channel of channels.values()) {
        for (const client of [...channel.clients]) {
          drop(channel, client);
          try {
            client.close();
          } catch {
            // Already gone.
          }
        }
      }
      await Promise.all([...channels.values()].map(async (channel) => {
        await channel.follower?.stop();
        channel.follower = undefined;
      }));
    },
    open(region, lastEventId, signal, clientId) {
      const channel = channels.get(region);
      if (channel === undefined) throw new RangeError(`Unknown region "${region}"`);
      if (clientCount >= clientsMax) {
        counters.refused++;
        return edgeProblem(
          "COMMON.RATE_LIMITED",
          `This edge already holds ${clientsMax} flash sale streams; retry in a few seconds`,
          { "retry-after": "5" },
        );
      }
      if (clientId !== undefined && (streamsByClient.get(clientId) ?? 0) >= clientStreamsMax) {
        counters.refused++;
        return edgeProblem(
          "COMMON.RATE_LIMITED",
          `This client already holds ${clientStreamsMax} flash sale streams; close one before opening another`,
          { "retry-after": "5" },
        );
      }
      const after = resumeSeq(channel, lastEventId);
      let self: ReadableStreamDefaultController<Uint8Array> | undefined;
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          self = controller;
          controller.enqueue(encoder.encode(`retry: ${retryMs}\n: connected to ${channel.name}\n\n`));
          if (after !== undefined) {
            for (const frame of channel.recent) {
              if (frame.seq !== undefined && frame.seq > after) controller.enqueue(frame.bytes);
            }
          }
          channel.clients.add(controller);
          clientCount++;
          if (clientId !== undefined) {
            ownerOf.set(controller, clientId);
            streamsByClient.set(clientId, (streamsByClient.get(clientId) ?? 0) + 1);
          }
        },
        cancel: () => self && drop(channel, self),
      }, new CountQueuingStrategy({ highWaterMark: queueMax }));
      // The server cancels the body of a client that went away; erroring it here would only add a log line.
      const leave = () => self && drop(channel, self);
      if (signal.aborted) leave();
      else signal.addEventListener("abort", leave, { once: true });
      return new Response(stream, {
        headers: {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache, no-transform",
          "x-accel-buffering": "no",
        },
      });
    },
    resumeRegionOf(lastEventId) {
      const colon = lastEventId?.indexOf(":") ?? -1;
      const name = colon > 0 ? lastEventId!.slice(0, colon) : undefined;
      return name !== undefined && channels.has(name) ? name : undefined;
    },
    closeRegion(region) {
      const channel = channels.get(region);
      if (channel === undefined) return 0;
      const clients = [...channel.clients];
      for (const client of clients) {
        drop(channel, client);
        try {
          client.close();
        } catch {
          // Already gone.
        }
      }
      return clients.length;
    },
    stats() {
      const list = [...channels.values()];
      return {
        clients: Object.fromEntries(list.map((c) => [c.name, c.clients.size])),
        upstreamUp: Object.fromEntries(list.map((c) => [c.name, c.follower?.connected ?? false])),
        upstreamConnects: Object.fromEntries(list.map((c) => [c.name, c.follower?.connects ?? 0])),
        ...counters,
      };
    },
  };
}
