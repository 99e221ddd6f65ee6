/**
 * @module
 * Worker side of the edge scenarios. One worker plays one role, so client, edge and region each get a
 * thread (three, on the 2-core machine, as in production they are three processes):
 *
 * - `{ role: "region" }`: a fake region ingress (raw `Deno.serve`: `/readyz`, `GET /api/v1/products/p1`
 *   with fixed JSON bytes, and `/sse/flash-sales`), plus the raw baselines: the same product bytes and a
 *   raw SSE broadcast server. `{ broadcast: "region" | "raw", seq }` sends one event to every stream of
 *   that server. Answers `{ regionPort, rawPort }`.
 * - `{ role: "edge", regionUrl, cache, flashSales }`: `createEdge` in front of that region (no auth, no
 *   rate limits: the bench measures the hop, the cache and the fan-out). Answers `{ edgePort }`.
 *
 * "stop" shuts the servers down and answers "stopped".
 */
import { createEdge, EDGE_CACHE_DEFAULTS } from "../../edge/worker.ts";

export type EdgeServersSetup =
  | { readonly role: "region" }
  | { readonly role: "edge"; readonly regionUrl: string; readonly cache: boolean; readonly flashSales: boolean };

/** The product JSON both the region and the raw baseline answer (about the size of a real product read). */
export const PRODUCT_PATH = "/api/v1/products/p1";
const PRODUCT_BYTES = new TextEncoder().encode(JSON.stringify({
  id: "p1",
  sku: "SKU-BENCH-1",
  name: "Bench product",
  description: "A product the edge bench reads again and again.".repeat(4),
  category: "bench",
  price: "19.99",
  currency: "EUR",
}));
const PRODUCT_HEADERS = { "content-type": "application/json", "cache-control": "public, max-age=60" };
const encoder = new TextEncoder();

const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
};
const stop = new AbortController();
const servers: Deno.HttpServer[] = [];
const serve = (handler: (request: Request) => Response | Promise<Response>) => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen: () => {} }, handler);
  servers.push(server);
  return server.addr.port;
};

/** A minimal SSE broadcaster: the same encoded frame to every open stream. */
function sseHub() {
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  return {
    open(): Response {
      let self: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          self = controller;
          streams.add(controller);
          controller.enqueue(encoder.encode(": connected\n\n"));
        },
        cancel: () => void streams.delete(self),
      });
      return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
    },
    broadcast(seq: number): void {
      const bytes = encoder.encode(`id: ${seq}\nevent: flash_sale.started\ndata: {"seq":${seq}}\n\n`);
      for (const controller of streams) controller.enqueue(bytes);
    },
    closeAll(): void {
      for (const controller of streams) controller.close();
      streams.clear();
    },
  };
}

const regionSse = sseHub();
const rawSse = sseHub();
let edgeStop: (() => Promise<void>) | undefined;

function startRegion(): { regionPort: number; rawPort: number } {
  const regionPort = serve((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/readyz") return new Response(null, { status: 200 });
    if (path === PRODUCT_PATH) return new Response(PRODUCT_BYTES, { headers: PRODUCT_HEADERS });
    if (path === "/sse/flash-sales") return regionSse.open();
    return new Response("Not found", { status: 404 });
  });
  const rawPort = serve((request) => {
    const path = new URL(request.url).pathname;
    if (path === PRODUCT_PATH) return new Response(PRODUCT_BYTES, { headers: PRODUCT_HEADERS });
    if (path === "/sse/flash-sales") return rawSse.open();
    return new Response("Not found", { status: 404 });
  });
  return { regionPort, rawPort };
}

async function startEdge(setup: Extract<EdgeServersSetup, { role: "edge" }>): Promise<{ edgePort: number }> {
  const edge = createEdge({
    regions: [{ name: "east", url: setup.regionUrl }],
    // A TTL longer than the scenario, so every timed request is a HIT (not a STALE with a refresh behind it).
    ...(setup.cache ? { cache: { ...EDGE_CACHE_DEFAULTS, ttlMs: 600_000, followInvalidations: false } } : {}),
    // Every bench client comes from one address: the per-client bound would refuse all but 32.
    ...(setup.flashSales ? { flashSales: { clientStreamsMax: 20_000 } } : {}),
  });
  await edge.start();
  edgeStop = () => edge.stop();
  return { edgePort: serve(edge.app.fetch) };
}

scope.onmessage = async (event) => {
  const message = event.data;
  if (message === "stop") {
    regionSse.closeAll();
    rawSse.closeAll();
    await edgeStop?.();
    stop.abort();
    await Promise.all(servers.map((server) => server.finished));
    scope.postMessage("stopped");
    scope.close();
  } else if (message?.broadcast !== undefined) {
    (message.broadcast === "region" ? regionSse : rawSse).broadcast(message.seq);
  } else if (message?.role === "region") {
    scope.postMessage(startRegion());
  } else if (message?.role === "edge") {
    scope.postMessage(await startEdge(message));
  }
};
