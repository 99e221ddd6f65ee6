/**
 * @module
 * The social (posts, comments, feeds) deployable of a region. This is its shell: readiness over the ports it uses; the domain
 * arrives with its own issue.
 */
import { createServiceApp } from "../../shared/runtime/mod.ts";
import { portChecks, type ServiceFactory } from "../wiring/service_context.ts";

export const createSocialService: ServiceFactory = (context) =>
  Promise.resolve(
    createServiceApp({
      name: context.name,
      checks: portChecks(context.ports, context.name, ["sql", "cache", "eventLog"]),
    }),
  );
