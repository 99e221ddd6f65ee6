/**
 * @module
 * What a regional service receives from its process: config, region, ports and lifecycle. A service is a
 * function from this context to its HTTP app; the same function runs in its own process (`deno task
 * start:infra`) or beside the others in the embedded process (`deno task start`).
 */
import type { Hono } from "hono";
import type { Config, Region, ServiceName } from "../../shared/config/config.ts";
import type { Lifecycle } from "../../shared/runtime/mod.ts";
import type { ReadinessCheck } from "../../shared/runtime/mod.ts";
import type { RegionPorts } from "./region_ports.ts";

export interface ServiceContext {
  readonly config: Config;
  readonly region: Region;
  readonly service: ServiceName;
  /** `<service>-<region>`: used in logs, client ids and consumer group ids. */
  readonly name: string;
  readonly ports: RegionPorts;
  readonly lifecycle: Lifecycle;
}

export type ServiceFactory = (context: ServiceContext) => Promise<Hono>;

/** Readiness checks for the ports a service uses, named after the dependency. */
export function portChecks(
  ports: RegionPorts,
  name: string,
  uses: readonly ("sql" | "cache" | "eventLog" | "workQueue" | "mqtt")[],
): Record<string, ReadinessCheck> {
  const checks: Record<string, ReadinessCheck> = {};
  const label = ports.mode === "embedded"
    ? { sql: "pglite", cache: "memory-cache", eventLog: "memory-event-log", workQueue: "memory-queue", mqtt: "aedes" }
    : { sql: "postgres", cache: "redis", eventLog: "kafka", workQueue: "rabbitmq", mqtt: "mosquitto" };
  for (const use of uses) {
    checks[label[use]] = async (timeoutMs) => {
      const port = use === "mqtt" ? await ports.mqtt(`${name}-readiness`) : await ports[use]();
      await port.ping(timeoutMs);
    };
  }
  return checks;
}
