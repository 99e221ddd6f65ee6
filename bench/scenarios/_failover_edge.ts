/**
 * @module
 * Worker side of `edge_failover`: `createEdge` in front of the given regions (in preference order) with the
 * production routing defaults (probes every 2 s, 1 s bound, thresholds of `region_router.ts`) and nothing
 * else: no cache (a hit would hide the failover), no auth, no rate limits. `{ regions }` starts it and
 * answers `{ edgePort }`; "stop" stops it and answers "stopped".
 */
import { createEdge, type EdgeRegion } from "../../edge/worker.ts";

const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
};
const abort = new AbortController();
let stopEdge: (() => Promise<void>) | undefined;
let server: Deno.HttpServer<Deno.NetAddr> | undefined;

scope.onmessage = async (event) => {
  const message = event.data as "stop" | { readonly regions: readonly EdgeRegion[] };
  if (message === "stop") {
    await stopEdge?.();
    abort.abort();
    await server?.finished;
    scope.postMessage("stopped");
    scope.close();
    return;
  }
  const edge = createEdge({ regions: message.regions });
  await edge.start();
  stopEdge = () => edge.stop();
  server = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: abort.signal, onListen: () => {} }, edge.app.fetch);
  scope.postMessage({ edgePort: server.addr.port });
};
