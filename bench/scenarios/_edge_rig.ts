/**
 * @module
 * Main-thread side of the edge scenarios: starts the region worker and the edge worker of
 * `_edge_servers.ts` and stops both, so each scenario only writes its client loop.
 */
import { nextMessage } from "./_worker.ts";

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

export interface EdgeRig {
  readonly regionUrl: string;
  /** Raw `Deno.serve` in the region's worker answering the same bytes (and the raw SSE broadcaster). */
  readonly rawUrl: string;
  readonly edgeUrl: string;
  /** Sends one event with `seq` to every stream of the region (subject) or of the raw server (baseline). */
  broadcast(target: "region" | "raw", seq: number): void;
  stop(): Promise<void>;
}

/** Region and edge in two worker threads; the caller's thread is the client. */
export async function startEdgeRig(options: { cache: boolean; flashSales: boolean }): Promise<EdgeRig> {
  const url = new URL("./_edge_servers.ts", import.meta.url);
  const region = new Worker(url, { type: "module" });
  const edge = new Worker(url, { type: "module" });
  const stop = async () => {
    for (const worker of [edge, region]) {
      try {
        worker.postMessage("stop");
        await nextMessage(worker, STOP_TIMEOUT_MS);
      } finally {
        worker.terminate();
      }
    }
  };
  try {
    region.postMessage({ role: "region" });
    const ports = await nextMessage<{ regionPort: number; rawPort: number }>(region, START_TIMEOUT_MS);
    const regionUrl = `http://127.0.0.1:${ports.regionPort}`;
    edge.postMessage({ role: "edge", regionUrl, ...options });
    const { edgePort } = await nextMessage<{ edgePort: number }>(edge, START_TIMEOUT_MS);
    return {
      regionUrl,
      rawUrl: `http://127.0.0.1:${ports.rawPort}`,
      edgeUrl: `http://127.0.0.1:${edgePort}`,
      broadcast: (target, seq) => region.postMessage({ broadcast: target, seq }),
      stop,
    };
  } catch (error) {
    edge.terminate();
    region.terminate();
    throw error;
  }
}
