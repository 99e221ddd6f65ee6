/**
 * @module
 * Runs one regional service as its own process on the real services: `BV_REGION=east deno run -A
 * regional/<service>/main.ts`. Config is read once; SIGINT/SIGTERM drain and close.
 */
import { loadConfigOrExit, regionFromEnvOrExit, type ServiceName } from "../../shared/config/config.ts";
import { log, setLogService } from "../../shared/observability/mod.ts";
import { createLifecycle } from "../../shared/runtime/mod.ts";
import { realRegionPorts } from "./region_ports.ts";
import type { ServiceFactory } from "./service_context.ts";

export async function runServiceProcess(service: ServiceName, factory: ServiceFactory): Promise<void> {
  const config = loadConfigOrExit();
  const region = regionFromEnvOrExit();
  const name = `${service}-${region}`;
  setLogService(name);
  const lifecycle = createLifecycle({ graceMs: config.BV_SHUTDOWN_GRACE_MS, handleSignals: true });
  const ports = realRegionPorts(config, region, name);
  lifecycle.onStop("ports", () => ports.close());
  try {
    const app = await factory({ config, region, service, name, ports, lifecycle });
    lifecycle.serve(app, { port: config.regions[region].servicePorts[service], hostname: config.BV_HOST, name });
  } catch (error) {
    log.error("service failed to start", { error: String(error), stack: (error as Error).stack });
    await lifecycle.stop("start failure");
    Deno.exit(1);
  }
}
