/**
 * @module
 * Ends a proxied Server-Sent Events stream when its process begins to shut down. A proxy passes the upstream's
 * stream through, so it never ends on its own (the edges hold the invalidation feed open for good), and a
 * server's drain waits on every open response: without this, each stop of a proxy waited its whole grace.
 */

/** The last bytes a client gets: an SSE comment, ignored by parsers; EventSource then reconnects elsewhere. */
const SHUTDOWN_COMMENT = new TextEncoder().encode(": shutting down; reconnect with Last-Event-ID\n\n");

/**
 * `response` as is, unless it is an event stream: then a copy whose body ends (after a last comment) when
 * `signal` aborts, cancelling the upstream. The listener goes with the stream, so none piles up per request.
 */
export function endingOnAbort(response: Response, signal: AbortSignal): Response {
  const contentType = response.headers.get("content-type") ?? "";
  // The header first: reading `body` turns a fixed body into a stream in Deno, which then answers it chunked
  // (no content-length) and without its fast path.
  if (!contentType.toLowerCase().startsWith("text/event-stream") || response.body === null) return response;
  const upstream = response.body.getReader();
  let onAbort: (() => void) | undefined;
  const detach = () => {
    if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    onAbort = undefined;
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      onAbort = () => {
        detach();
        try {
          controller.enqueue(SHUTDOWN_COMMENT);
          controller.close();
        } catch {
          // The client already went.
        }
        upstream.cancel().catch(() => {});
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    },
    async pull(controller) {
      try {
        const { done, value } = await upstream.read();
        if (done) {
          detach();
          controller.close();
        } else controller.enqueue(value);
      } catch (error) {
        detach();
        // Closed by the abort above while this read waited: the stream already ended cleanly.
        if (signal.aborted) return;
        controller.error(error);
      }
    },
    cancel(reason) {
      detach();
      return upstream.cancel(reason);
    },
  });
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}
