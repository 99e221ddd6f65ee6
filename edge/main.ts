/**
 * @module
 * Runs the edge worker under Deno on `BV_EDGE_PORT` (8080), in front of the east and west ingresses. The
 * one Deno-specific piece the worker needs is injected here: WebSocket proxying (`Deno.upgradeWebSocket`).
 */
import { loadConfigOrExit } from "../shared/config/config.ts";
import { proxyWebSocket } from "../shared/http/websocket_proxy.ts";
import { log, setLogService } from "../shared/observability/mod.ts";
import { createLifecycle } from "../shared/runtime/mod.ts";
import { edgeOptionsOf } from "./regions.ts";
import { createEdge } from "./worker.ts";

const config = loadConfigOrExit();
setLogService("edge");
const lifecycle = createLifecycle({ graceMs: config.BV_SHUTDOWN_GRACE_MS, handleSignals: true });
const edge = createEdge({
  ...edgeOptionsOf(config),
  log,
  webSocket: (request, target) => proxyWebSocket(request, { ...target, connectTimeoutMs: config.BV_CALL_TIMEOUT_MS }),
});
await edge.start();
// The fan-out's client streams end when the drain begins (they would hold the server's drain until the grace ran
// out); stop() is idempotent, so the closer only finishes what is left.
lifecycle.shuttingDown.addEventListener("abort", () => void edge.stop(), { once: true });
lifecycle.onStop("health probes and invalidation streams", () => edge.stop());
lifecycle.serve(edge.app, { port: config.BV_EDGE_PORT, hostname: config.BV_HOST, name: "edge" });
