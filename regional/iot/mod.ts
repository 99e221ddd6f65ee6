/**
 * @module
 * The IoT (device registry, telemetry, firmware rollout) deployable of a region. This is its shell: readiness over the ports it uses; the domain
 * arrives with its own issue.
 */
import { createServiceApp } from "../../shared/runtime/mod.ts";
import { portChecks, type ServiceFactory } from "../wiring/service_context.ts";

export const createIotService: ServiceFactory = (context) =>
  Promise.resolve(
    createServiceApp({
      name: context.name,
      checks: portChecks(context.ports, context.name, ["sql", "eventLog", "mqtt"]),
    }),
  );
