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
lifecycle.onStop("health probes and invalidation streams", () => edge.stop());
lifecycle.serve(edge.app, { port: config.BV_EDGE_PORT, hostname: config.BV_HOST, name: "edge" });
