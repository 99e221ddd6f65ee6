/**
 * @module
 * One GET through the shared HTTP shell (createServiceApp: trace context, metrics, access log, body limit,
 * problem handlers) with one trivial JSON route, against raw `Deno.serve` returning the same JSON. Both are
 * served from a worker thread and called over real loopback HTTP/1.1 with `fetch` (keep-alive pool).
 */
import { compare, resultOf, type Scenario } from "../harness.ts";

const SERVER_START_TIMEOUT_MS = 10_000;
const SERVER_STOP_TIMEOUT_MS = 5_000;
/** Requests in flight: enough to keep the server thread busy, few enough for a 2-core machine. */
const CONCURRENCY = 4;

export const httpServiceApp: Scenario = {
  name: "http_service_app",
  description: "GET /bench via fetch (keep-alive) to createServiceApp + one route vs raw Deno.serve, same JSON",
  async run(ctx) {
    const worker = new Worker(new URL("./_http_servers.ts", import.meta.url), { type: "module" });
    try {
      const ports = await nextMessage<{ subjectPort: number; baselinePort: number }>(
        worker,
        SERVER_START_TIMEOUT_MS,
      );
      ctx.log(`servers on :${ports.subjectPort} (service app) and :${ports.baselinePort} (raw)`);
      const get = (port: number) => async () => {
        const response = await fetch(`http://127.0.0.1:${port}/bench`);
        // Reading the body to the end returns the connection to the keep-alive pool.
        const body = await response.json();
        if (response.status !== 200 || body.ok !== true) {
          throw new Error(`GET :${port}/bench answered ${response.status} ${JSON.stringify(body)}`);
        }
      };
      const sides = await compare(
        { label: "createServiceApp", op: get(ports.subjectPort) },
        { label: "Deno.serve", op: get(ports.baselinePort) },
        { iterationsPerRound: 3_000, warmupPerRound: 300, concurrency: CONCURRENCY, timeCapMsPerRound: 3_000 },
      );
      worker.postMessage("stop");
      await nextMessage(worker, SERVER_STOP_TIMEOUT_MS);
      return resultOf("http_service_app", sides);
    } finally {
      worker.terminate();
    }
  },
};

/** The worker's next message, or an error (its own, or a timeout). */
function nextMessage<T>(worker: Worker, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => settle(() => reject(new Error(`HTTP worker silent for ${timeoutMs} ms`))),
      timeoutMs,
    );
    const settle = (finish: () => void) => {
      clearTimeout(timer);
      worker.onmessage = null;
      worker.onerror = null;
      finish();
    };
    worker.onmessage = (event) => settle(() => resolve(event.data as T));
    worker.onerror = (event) => {
      event.preventDefault();
      settle(() => reject(new Error(`HTTP worker failed: ${event.message}`)));
    };
  });
}
