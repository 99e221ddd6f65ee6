/**
 * @module
 * The edge side of a region's invalidation stream (contract in README.md): a Server-Sent Events client on
 * fetch and streams that reconnects forever with capped, jittered exponential backoff, treats silence
 * longer than the idle timeout as a dead connection (the region sends heartbeat comments), and bounds
 * every line it buffers. Events missed while disconnected cannot be replayed, so the caller is told of
 * every (re)connection and drops what it cached from that region.
 */

/** Where each region serves its invalidation stream. */
export const INVALIDATIONS_PATH = "/api/v1/ecommerce/invalidations";

/** One `event: purge` message: the product whose cached reads must go. */
export interface InvalidationEvent {
  readonly productId: string;
}

export interface FollowInvalidationsOptions {
  readonly onPurge: (event: InvalidationEvent) => void;
  /** Called each time the stream is (re)established; purges during the gap are lost. */
  readonly onConnected?: () => void;
  /** Called when an established stream ends, with the reason. */
  readonly onDisconnected?: (reason: string) => void;
  readonly fetch?: typeof fetch;
  /** Bound on waiting for the response headers. @default 5000 */
  readonly connectTimeoutMs?: number;
  /** A stream silent for this long is reconnected (the region sends a heartbeat every 15 s). @default 45_000 */
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

export interface InvalidationFollower {
  /** True while a stream is established. */
  readonly connected: boolean;
  /** Counters for metrics and tests. */
  readonly stats: { connects: number; purges: number; ignored: number };
  /** Closes the stream and stops reconnecting; resolves when nothing is left running. */
  stop(): Promise<void>;
}

/** A stream that stayed up this long resets the backoff, so a flapping region cannot be reconnected in a loop. */
const STABLE_CONNECTION_MS = 5_000;
const PRODUCT_ID_CHARS_MAX = 200;

/** Follows `${regionUrl}${INVALIDATIONS_PATH}` until `stop()`. */
export function followInvalidations(regionUrl: string, options: FollowInvalidationsOptions): InvalidationFollower {
  const url = new URL(INVALIDATIONS_PATH, regionUrl);
  const fetchFn = options.fetch ?? fetch;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
  const backoffInitialMs = options.backoffInitialMs ?? 250;
  const backoffMaxMs = options.backoffMaxMs ?? 30_000;
  const lineCharsMax = options.lineCharsMax ?? 4096;
  const random = options.random ?? Math.random;
  const stopping = new AbortController();
  const stats = { connects: 0, purges: 0, ignored: 0 };
  let connected = false;

  function dispatch(event: string, data: string): void {
    if (event !== "purge") return;
    let productId: unknown;
    try {
      productId = (JSON.parse(data) as { productId?: unknown })?.productId;
    } catch {
      productId = undefined;
    }
    if (typeof productId !== "string" || productId.length === 0 || productId.length > PRODUCT_ID_CHARS_MAX) {
      stats.ignored++;
      return;
    }
    stats.purges++;
    options.onPurge({ productId });
  }

  async function connectOnce(): Promise<string> {
    const connection = new AbortController();
    const onStop = () => connection.abort(new DOMException("stopped", "AbortError"));
    stopping.signal.addEventListener("abort", onStop, { once: true });
    let timer = setTimeout(
      () => connection.abort(new DOMException("connect timeout", "TimeoutError")),
      connectTimeoutMs,
    );
    try {
      const response = await fetchFn(url, { headers: { accept: "text/event-stream" }, signal: connection.signal });
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
      stats.connects++;
      options.onConnected?.();
      return await readEvents(response.body, armIdle);
    } catch (error) {
      return (error as Error)?.message ?? String(error);
    } finally {
      clearTimeout(timer);
      stopping.signal.removeEventListener("abort", onStop);
      connection.abort();
    }
  }

  async function readEvents(body: ReadableStream<Uint8Array>, onActivity: () => void): Promise<string> {
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
            if (data !== undefined) dispatch(event, data);
            event = "";
            data = undefined;
          } else if (line.startsWith("data:")) {
            const value = line.slice(line[5] === " " ? 6 : 5);
            data = data === undefined ? value : `${data}\n${value}`;
            if (data.length > lineCharsMax) return `an event's data passed ${lineCharsMax} characters`;
          } else if (line.startsWith("event:")) {
            event = line.slice(line[6] === " " ? 7 : 6);
          }
          // Comments (heartbeats), `id:` and `retry:` need nothing: the edge picks its own reconnect delay.
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
    stats,
    stop: async () => {
      stopping.abort();
      await running;
    },
  };
}
