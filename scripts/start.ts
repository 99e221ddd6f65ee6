/**
 * @module
 * `deno task start`: the whole platform — edge, east and west — in ONE process on the embedded default
 * (PGlite, in-process event log/cache/queue, aedes MQTT). In-process adapters cannot be shared between
 * processes, so the regions live side by side here, still talking HTTP over loopback, and their event
 * logs replicate east ⇄ west through the event mirror.
 */
import { type Config, loadConfigOrExit, type Region, REGIONS, SERVICES } from "../shared/config/config.ts";
import { ecommerceEvents } from "../shared/contracts/mod.ts";
import { log, setLogService } from "../shared/observability/mod.ts";
import { startEventMirror } from "../shared/replication/event_mirror.ts";
import { createLifecycle, type Lifecycle, PORTS_CLOSE_RESERVE_MS } from "../shared/runtime/mod.ts";
import { startEmbeddedMqttBroker } from "../shared/adapters/aedes/mod.ts";
import { embeddedRegionPorts, type RegionPorts } from "../regional/wiring/region_ports.ts";
import { serviceFactories } from "../regional/wiring/services.ts";
import { createIngressApp, serviceUrlsOf } from "../regional/ingress/mod.ts";
import { createEdge } from "../edge/worker.ts";
import { edgeOptionsOf } from "../edge/regions.ts";
import { proxyWebSocket } from "../shared/http/websocket_proxy.ts";
import { endpointsTable } from "./endpoints_table.ts";
import { ensureDevelopmentWebhookEgress, ensureInternalSigningKey } from "./platform_processes.ts";
import { startPaymentGatewaySimulator } from "../regional/ecommerce/payment/mod.ts";

/** Topics replicated between regions (seed 000 section 5: order events feed the other region's dashboards). */
const MIRRORED_TOPICS = [
  ecommerceEvents.orderCreated.eventType,
  ecommerceEvents.orderPaid.eventType,
  ecommerceEvents.orderCanceled.eventType,
  ecommerceEvents.orderFulfilled.eventType,
];

async function startRegion(config: Config, region: Region, lifecycle: Lifecycle): Promise<RegionPorts> {
  const endpoints = config.regions[region];
  const broker = await startEmbeddedMqttBroker({ host: config.BV_HOST, port: endpoints.embeddedMqttPort });
  lifecycle.onStop(`aedes-${region}`, () => broker.close());
  const ports = embeddedRegionPorts(config, region);
  // PGlite flushes its files on close: it keeps time for that whatever hangs before it.
  lifecycle.onStop(`ports-${region}`, () => ports.close(), { reserveMs: PORTS_CLOSE_RESERVE_MS });
  // Security first: the others verify tokens with its JWKS.
  for (const service of SERVICES) {
    const name = `${service}-${region}`;
    const app = await serviceFactories[service]({ config, region, service, name, ports, lifecycle });
    lifecycle.serve(app, { port: endpoints.servicePorts[service], hostname: config.BV_HOST, name });
  }
  const ingress = createIngressApp({
    name: `ingress-${region}`,
    serviceUrls: serviceUrlsOf(config.connectHost, endpoints.servicePorts),
    upstreamTimeoutMs: config.BV_CALL_TIMEOUT_MS,
  });
  lifecycle.serve(ingress, { port: endpoints.ingressPort, hostname: config.BV_HOST, name: `ingress-${region}` });
  return ports;
}

// Both regions' e-commerce sign and verify forwarded sensor batches with it: one key per start unless one is set.
ensureInternalSigningKey();
// Development tooling: partner receivers on localhost get their webhooks unless BV_WEBHOOK_EGRESS says otherwise.
ensureDevelopmentWebhookEgress();
const config = loadConfigOrExit();
setLogService("bitvelocity-embedded");
const lifecycle = createLifecycle({ graceMs: config.BV_SHUTDOWN_GRACE_MS, handleSignals: true });
const started = performance.now();
try {
  // The simulated legacy payment gateway both regions pay through (its own process under start:infra).
  const gateway = await startPaymentGatewaySimulator({ host: config.BV_HOST, port: config.BV_PAYMENT_GATEWAY_PORT });
  lifecycle.onStop("payment gateway simulator", () => gateway.close());
  const [east, west] = await Promise.all(REGIONS.map((region) => startRegion(config, region, lifecycle)));
  const [eastLog, westLog] = await Promise.all([east.eventLog(), west.eventLog()]);
  for (
    const [source, target, from, to] of [[eastLog, westLog, "east", "west"], [
      westLog,
      eastLog,
      "west",
      "east",
    ]] as const
  ) {
    const mirror = await startEventMirror({
      source,
      target,
      sourceRegion: from,
      targetRegion: to,
      topics: MIRRORED_TOPICS,
    });
    lifecycle.onStop(`mirror-${from}-to-${to}`, () => mirror.close());
  }
  const edge = createEdge({
    ...edgeOptionsOf(config),
    // Deno-specific, so injected (edge/main.ts does the same): WebSockets through the edge to a sticky region.
    webSocket: (request, target) => proxyWebSocket(request, { ...target, connectTimeoutMs: config.BV_CALL_TIMEOUT_MS }),
  });
  await edge.start();
  // The fan-out's client streams end when the drain begins, not after it timed out on them.
  lifecycle.shuttingDown.addEventListener("abort", () => void edge.stop(), { once: true });
  lifecycle.onStop("edge health probes", () => Promise.resolve(edge.stop()));
  lifecycle.serve(edge.app, { port: config.BV_EDGE_PORT, hostname: config.BV_HOST, name: "edge" });
  console.log(`\n${endpointsTable(config, "embedded")}\n`);
  log.info("platform started", { mode: "embedded", ms: Math.round(performance.now() - started) });
} catch (error) {
  log.error("platform failed to start", { error: String(error), stack: (error as Error).stack });
  await lifecycle.stop("start failure");
  Deno.exit(1);
}
