/**
 * @module
 * Worker side of the `http_service_app` scenario: serves the subject (createServiceApp with one route) and
 * the baseline (raw Deno.serve) on loopback, off the main thread, so the client's fetch loop and the
 * servers run on separate cores of the 2-core machine. Posts `{ subjectPort, baselinePort }` once
 * listening; on "stop" it drains both servers and posts "stopped".
 */
import { createServiceApp } from "../../shared/runtime/mod.ts";

/** The same body from both servers. */
const BODY = Object.freeze({ ok: true, service: "bench" });
const BENCH_PATH = "/bench";

// The access log line of every request is still built (its cost is part of the subject) but not written:
// a log line per request on the bench's stdout would drown the results and measure the terminal instead.
console.log = () => {};

const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
};
const stop = new AbortController();
const serve = (handler: (request: Request) => Response | Promise<Response>) =>
  Deno.serve({ hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen: () => {} }, handler);

const app = createServiceApp({ name: "bench", checks: {} });
app.get(BENCH_PATH, (c) => c.json(BODY));
const subject = serve(app.fetch);
const baseline = serve((request) =>
  new URL(request.url).pathname === BENCH_PATH ? Response.json(BODY) : new Response("Not found", { status: 404 })
);

scope.onmessage = async (event) => {
  if (event.data !== "stop") return;
  stop.abort();
  await Promise.all([subject.finished, baseline.finished]);
  scope.postMessage("stopped");
  scope.close();
};
scope.postMessage({ subjectPort: subject.addr.port, baselinePort: baseline.addr.port });
