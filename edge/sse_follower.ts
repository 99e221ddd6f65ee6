/**
 * @module
 * A Server-Sent Events client on fetch and streams, shared by the edge's upstream subscriptions (a region's
 * invalidation stream, its flash-sale stream). It reconnects forever with capped, jittered exponential
 * backoff, treats silence longer than the idle timeout as a dead connection (regions send heartbeat
 * comments), bounds every line and event it buffers, and can resume with `Last-Event-ID`.
 */

/** One dispatched event: `event:` (empty when absent), `data:` lines joined by LF, and the last `id:` seen. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
  /** The stream's last event id when this event was dispatched (SSE keeps it across events). */
  readonly id: string;
}

export interface FollowEventStreamOptions {
  readonly onEvent: (event: SseEvent) => void;
  /** Called each time the stream is (re)established. */
  readonly onConnected?: () => void;
  /** Called when an established stream ends, with the reason. */
  readonly onDisconnected?: (reason: string) => void;
  /** Sent as `Last-Event-ID` on each (re)connection when it returns a non-empty string. */
  readonly lastEventId?: () => string | undefined;
  readonly fetch?: typeof fetch;
  /** Bound on waiting for the response headers. @default 5000 */
  readonly connectTimeoutMs?: number;
  /** A stream silent for this long is reconnected (regions send a heartbeat every 15 s). @default 45_000 */
  readonly idleTimeoutMs?: number;
  /** First reconnect delay; doubles per failed attempt. @default 250 */
  readonly backoffInitialMs?: number;
  /** Largest reconnect delay. @default 30_000 */
  readonly backoffMaxMs?: number;
  /** Longest line or event data accepted; more is a protocol error and the stream is reconnected. @default 4096 */
  readonly lineCharsMax?: number;
  /** Jitter source in [0, 1). @default Math.random */
  readonly random?: () => number;
}

export interface EventStreamFollower {
  /** True while a stream is established. */
  readonly connected: boolean;
  /** Established connections so far. */
  readonly connects: number;
  /** Closes the stream and stops reconnecting; resolves when nothing is left running. */
  stop(): Promise<void>;
}

/** A stream that stayed up this long resets the backoff, so a flapping region cannot be reconnected in a loop. */
const STABLE_CONNECTION_MS = 5_000;
/** Event ids are short numbers in practice; a longer one is ignored rather than kept. */
const ID_CHARS_MAX = 128;

/** Follows `url` until `stop()`. */
export function followEventStream(url: URL, options: FollowEventStreamOptions): EventStreamFollower {
  const fetchFn = options.fetch ?? fetch;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
  const backoffInitialMs = options.backoffInitialMs ?? 250;
  const backoffMaxMs = options.backoffMaxMs ?? 30_000;
  const lineCharsMax = options.lineCharsMax ?? 4096;
  const random = options.random ?? Math.random;
  const stopping = new AbortController();
  let connected = false;
  let connects = 0;

  async function connectOnce(): Promise<string> {
    const connection = new AbortController();
    const onStop = () => connection.abort(new DOMException("stopped", "AbortError"));
    stopping.signal.addEventListener("abort", onStop, { once: true });
    let timer = setTimeout(
      () => connection.abort(new DOMException("connect timeout", "TimeoutError")),
      connectTimeoutMs,
    );
    try {
      const headers: Record<string, string> = { accept: "text/event-stream" };
      const lastId = options.lastEventId?.();
      if (lastId) headers["last-event-id"] = lastId;
      const response = await fetchFn(url, { headers, signal: connection.signal });
      const type = response.headers.get("content-type") ?? "";
      if (!response.ok || response.body === null || !type.startsWith("text/event-stream")) {
        await response.body?.cancel();
        return `${url.pathname} answered ${response.status} ${type}`;
      }
      clearTimeout(timer);
      const armIdle = () => {
        clearTimeout(timer);
        timer = setTimeout(() => connection.abort(new DOMException("idle timeout", "TimeoutError")), idleTimeoutMs);
      };
      armIdle();
      connected = true;
      connects++;
      options.onConnected?.();
      return await readEvents(response.body, armIdle, lastId ?? "");
    } catch (error) {
      return (error as Error)?.message ?? String(error);
    } finally {
      clearTimeout(timer);
      stopping.signal.removeEventListener("abort", onStop);
      connection.abort();
    }
  }

  async function readEvents(body: ReadableStream<Uint8Array>, onActivity: () => void, id: string): Promise<string> {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = "";
    let data: string | undefined;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return "the stream ended";
        onActivity();
        buffer += value;
        let start = 0;
        while (true) {
          const lf = buffer.indexOf("\n", start);
          const cr = buffer.indexOf("\r", start);
          let end = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
          if (end < 0) break;
          // A CR at the end of a chunk may be the first half of a CRLF: wait for the next chunk.
          if (end === cr && cr === buffer.length - 1) break;
          const line = buffer.slice(start, end);
          if (end === cr && buffer[cr + 1] === "\n") end++;
          start = end + 1;
          if (line === "") {
            if (data !== undefined) options.onEvent({ event, data, id });
            event = "";
            data = undefined;
          } else if (line.startsWith("data:")) {
            const value = line.slice(line[5] === " " ? 6 : 5);
            data = data === undefined ? value : `${data}\n${value}`;
            if (data.length > lineCharsMax) return `an event's data passed ${lineCharsMax} characters`;
          } else if (line.startsWith("event:")) {
            event = line.slice(line[6] === " " ? 7 : 6);
          } else if (line.startsWith("id:")) {
            const value = line.slice(line[3] === " " ? 4 : 3);
            // The SSE spec ignores ids containing NUL; we also ignore absurdly long ones.
            if (!value.includes("\0") && value.length <= ID_CHARS_MAX) id = value;
          }
          // Comments (heartbeats) and `retry:` need nothing: the edge picks its own reconnect delay.
        }
        buffer = buffer.slice(start);
        if (buffer.length > lineCharsMax) return `a line passed ${lineCharsMax} characters`;
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  async function sleep(ms: number): Promise<void> {
    if (stopping.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stopping.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stopping.signal.addEventListener("abort", done, { once: true });
    });
  }

  const running = (async () => {
    let attempt = 0;
    while (!stopping.signal.aborted) {
      const startedMs = Date.now();
      const reason = await connectOnce();
      if (connected) {
        connected = false;
        if (Date.now() - startedMs >= STABLE_CONNECTION_MS) attempt = 0;
        options.onDisconnected?.(reason);
      }
      if (stopping.signal.aborted) break;
      const ceilingMs = Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.min(attempt, 30));
      attempt++;
      // Half fixed, half random: spreads the reconnects of many edges without ever retrying at once.
      await sleep(ceilingMs / 2 + random() * ceilingMs / 2);
    }
  })();

  return {
    get connected() {
      return connected;
    },
    get connects() {
      return connects;
    },
    stop: async () => {
      stopping.abort();
      await running;
    },
  };
}
