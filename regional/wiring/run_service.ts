/**
 * @module
 * Runs one regional service as its own process on the real services: `BV_REGION=east deno run -A
 * regional/<service>/main.ts`. Config is read once; SIGINT/SIGTERM drain and close.
 */
import { ConfigError, loadConfigOrExit, regionFromEnvOrExit, type ServiceName } from "../../shared/config/config.ts";
import { log, setLogService } from "../../shared/observability/mod.ts";
import { createLifecycle, PORTS_CLOSE_RESERVE_MS } from "../../shared/runtime/mod.ts";
import { realRegionPorts } from "./region_ports.ts";
import type { ServiceFactory } from "./service_context.ts";

export async function runServiceProcess(service: ServiceName, factory: ServiceFactory): Promise<void> {
  const config = loadConfigOrExit();
  const region = regionFromEnvOrExit();
  const name = `${service}-${region}`;
  setLogService(name);
  const lifecycle = createLifecycle({
    graceMs: config.BV_SHUTDOWN_GRACE_MS,
    // The ingress asks this process's /readyz for the edge's probes: a restart is seen before the listener closes.
    drainDelayMs: config.BV_DRAIN_DELAY_MS,
    handleSignals: true,
  });
  const ports = realRegionPorts(config, region, name);
  // Closed last, and kept time for whatever hangs before it: the pools end their connections cleanly.
  lifecycle.onStop("ports", () => ports.close(), { reserveMs: PORTS_CLOSE_RESERVE_MS });
  try {
    const app = await factory({ config, region, service, name, ports, lifecycle });
    lifecycle.serve(app, { port: config.regions[region].servicePorts[service], hostname: config.BV_HOST, name });
  } catch (error) {
    // A variable only this service requires (e-commerce's BV_INTERNAL_SIGNING_KEY), checked before it opens or
    // serves anything: one line and EX_CONFIG, as loadConfigOrExit.
    if (error instanceof ConfigError) {
      console.error(error.message);
      Deno.exit(78);
    }
    log.error("service failed to start", { error: String(error), stack: (error as Error).stack });
    await lifecycle.stop("start failure");
    Deno.exit(1);
  }
}
