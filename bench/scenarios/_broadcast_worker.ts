/**
 * @module
 * Worker side of the real-time baselines (`order_to_websocket`, `flash_sale_fanout`): a raw `Deno.serve`
 * server, off the main thread like the platform's deployables are off the bench's process, with
 * - `GET /ws`: a WebSocket that receives every broadcast;
 * - `GET /sse`: a `text/event-stream` that receives every broadcast;
 * - `POST /publish?id=…`: answers 201, then sends `{"id":…}` to every WebSocket and SSE client (the text
 *   encoded once for all SSE clients, as the flash sale hub does).
 * Posts `{ port }` once listening; on "stop" it closes every client and the server and posts "stopped".
 */

const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
};
const encoder = new TextEncoder();
const sockets = new Set<WebSocket>();
const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
const stop = new AbortController();

function broadcast(id: string): void {
  const text = JSON.stringify({ id });
  const frame = encoder.encode(`event: broadcast\ndata: ${text}\n\n`);
  for (const socket of sockets) {
    if (socket.readyState === WebSocket.OPEN) socket.send(text);
  }
  for (const controller of streams) {
    try {
      controller.enqueue(frame);
    } catch {
      streams.delete(controller);
    }
  }
}

const server = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen: () => {} }, (request) => {
  const url = new URL(request.url);
  if (url.pathname === "/ws") {
    const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
    socket.onopen = () => sockets.add(socket);
    socket.onclose = () => sockets.delete(socket);
    return response;
  }
  if (url.pathname === "/sse") {
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
        c.enqueue(encoder.encode(": connected\n\n"));
        streams.add(c);
      },
      cancel: () => void (controller && streams.delete(controller)),
    });
    return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
  }
  if (url.pathname === "/publish" && request.method === "POST") {
    const id = url.searchParams.get("id") ?? "";
    // Sent as soon as the handler returned: the platform, too, answers before its event travels.
    queueMicrotask(() => broadcast(id));
    return new Response(JSON.stringify({ id }), { status: 201, headers: { "content-type": "application/json" } });
  }
  return new Response("Not found", { status: 404 });
});

scope.onmessage = async (event) => {
  if (event.data !== "stop") return;
  for (const socket of sockets) socket.close(1001, "bench done");
  for (const controller of streams) {
    try {
      controller.close();
    } catch {
      // Already closed by its client.
    }
  }
  stop.abort();
  await server.finished;
  scope.postMessage("stopped");
  scope.close();
};
scope.postMessage({ port: server.addr.port });
