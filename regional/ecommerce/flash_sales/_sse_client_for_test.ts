/**
 * @module
 * A minimal EventSource for tests: opens a stream with fetch (so headers such as Last-Event-ID can be
 * set), parses frames as the SSE spec does for `id`, `event`, `data` and comments, and waits with bounds.
 */

export interface SseEvent {
  readonly id: string;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

export interface SseClient {
  readonly status: number;
  readonly headers: Headers;
  /** Events received so far, in order. */
  readonly events: SseEvent[];
  /** Comment lines (heartbeats) received so far. */
  comments(): number;
  /** Resolves once `count` events matching `filter` (default: all) arrived; rejects after `timeoutMs`. */
  waitForEvents(count: number, filter?: (event: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent[]>;
  /** Disconnects (as a browser tab closing would). */
  close(): Promise<void>;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: abort.signal });
  const events: SseEvent[] = [];
  let comments = 0;
  const reading = (async () => {
    if (!response.ok || !response.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = new Map<string, string>();
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) comments++;
            const colon = line.indexOf(":");
            if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
          }
          if (fields.has("data")) {
            events.push({
              id: fields.get("id") ?? "",
              event: fields.get("event") ?? "message",
              data: JSON.parse(fields.get("data")!),
            });
          }
        }
      }
    } catch {
      // Aborted by close(), or the server ended the stream.
    }
  })();
  return {
    status: response.status,
    headers: response.headers,
    events,
    comments: () => comments,
    async waitForEvents(count, filter = () => true, timeoutMs = 10_000) {
      const started = Date.now();
      for (;;) {
        const matching = events.filter(filter);
        if (matching.length >= count) return matching;
        if (Date.now() - started > timeoutMs) {
          throw new Error(
            `Only ${matching.length} of ${count} SSE events within ${timeoutMs} ms: ${JSON.stringify(events)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async close() {
      abort.abort();
      await reading;
      if (!response.ok) await response.body?.cancel().catch(() => {});
    },
  };
}

/** Polls `predicate` every 20 ms until it holds; rejects after `timeoutMs`. */
export async function waitUntil(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
