/** @module Process entry point: `BV_REGION=east deno run -A regional/ingress/main.ts`. */
import { loadConfigOrExit, regionFromEnvOrExit } from "../../shared/config/config.ts";
import { setLogService } from "../../shared/observability/mod.ts";
import { createLifecycle } from "../../shared/runtime/mod.ts";
import { createIngressApp, serviceUrlsOf } from "./mod.ts";

const config = loadConfigOrExit();
const region = regionFromEnvOrExit();
const name = `ingress-${region}`;
setLogService(name);
const lifecycle = createLifecycle({
  graceMs: config.BV_SHUTDOWN_GRACE_MS,
  // The edge probes this /readyz: it must see the 503 before the listener closes.
  drainDelayMs: config.BV_DRAIN_DELAY_MS,
  handleSignals: true,
});
const app = createIngressApp({
  name,
  serviceUrls: serviceUrlsOf(config.connectHost, config.regions[region].servicePorts),
  upstreamTimeoutMs: config.BV_CALL_TIMEOUT_MS,
});
lifecycle.serve(app, { port: config.regions[region].ingressPort, hostname: config.BV_HOST, name });
