/**
 * @module
 * The security deployable of a region: authentication (sign-up, login, refresh-token rotation, roles) and
 * the JWKS that every other service and the edge verify tokens with.
 */
import { createServiceApp } from "../../shared/runtime/mod.ts";
import { log } from "../../shared/observability/mod.ts";
import { portChecks, type ServiceFactory } from "../wiring/service_context.ts";
import { createAuthModule, createClientAddressOf } from "./auth/mod.ts";

export const createSecurityService: ServiceFactory = async (context) => {
  const { config } = context;
  const auth = await createAuthModule({
    sql: await context.ports.sql(),
    issuer: config.BV_JWT_ISSUER,
    audience: config.BV_JWT_AUDIENCE,
    accessTokenTtlSec: config.BV_ACCESS_TOKEN_TTL_SEC,
    // Where our edges and ingress connect from: their X-Forwarded-For entries are passed over to find the client.
    clientAddressOf: createClientAddressOf({ trustedProxies: config.BV_TRUSTED_PROXIES }),
  });
  await auth.ensureAdmin(config.BV_ADMIN_EMAIL, config.BV_ADMIN_PASSWORD);
  log.info("admin account ensured", { email: config.BV_ADMIN_EMAIL });
  const app = createServiceApp({
    name: context.name,
    checks: portChecks(context.ports, context.name, ["sql"]),
  });
  app.route("/", auth.routes);
  return app;
};
