/**
 * @module
 * The ops deployable of a region: administrative reads for operators (ADMIN only). Replay and other
 * tools arrive with the issues that need them.
 */
import { requireAuth } from "../../shared/auth/mod.ts";
import { registeredEventTypes } from "../../shared/contracts/mod.ts";
import { createServiceApp } from "../../shared/runtime/mod.ts";
import { portChecks, type ServiceFactory } from "../wiring/service_context.ts";
import { regionalVerifier } from "../wiring/verifier.ts";

export const createOpsService: ServiceFactory = (context) => {
  const app = createServiceApp({
    name: context.name,
    checks: portChecks(context.ports, context.name, ["sql", "eventLog"]),
  });
  const admin = requireAuth(regionalVerifier(context.config, context.region), { roles: ["ADMIN"] });
  app.get(
    "/api/v1/ops/event-types",
    admin,
    (c) => c.json({ region: context.region, eventTypes: registeredEventTypes() }),
  );
  return Promise.resolve(app);
};
