/**
 * @module
 * The security deployable of a region: authentication (sign-up, login, refresh-token rotation, roles) and
 * the JWKS that every other service and the edge verify tokens with. Auth follows the region's single writer
 * (auth/single_writer.ts): in a replica region every auth write is forwarded to the writer region's ingress.
 */
import { ConfigError } from "../../shared/config/config.ts";
import { createServiceApp } from "../../shared/runtime/mod.ts";
import { log } from "../../shared/observability/mod.ts";
import { portChecks, type ServiceFactory } from "../wiring/service_context.ts";
import { createWriterRoleReader, forwardWritesToWriter, sqlReplicationPositions } from "../wiring/writer/mod.ts";
import { createAuthModule, createClientAddressOf, isAuthWrite } from "./auth/mod.ts";

export const createSecurityService: ServiceFactory = async (context) => {
  const { config } = context;
  // Before anything starts: a replica region signs the hop of every auth write it forwards with this key, and the
  // writer trusts a forwarded write's claim only when it verifies (the key e-commerce holds, the same everywhere).
  const signingKey = config.BV_INTERNAL_SIGNING_KEY;
  if (signingKey === undefined) {
    throw new ConfigError(
      "BV_INTERNAL_SIGNING_KEY",
      "is missing: security signs the auth writes it forwards to the writer region with it; set the same key in " +
        "every region",
    );
  }
  const sql = await context.ports.sql();
  const auth = await createAuthModule({
    sql,
    issuer: config.BV_JWT_ISSUER,
    audience: config.BV_JWT_AUDIENCE,
    accessTokenTtlSec: config.BV_ACCESS_TOKEN_TTL_SEC,
    refreshReuseGraceMs: config.BV_REFRESH_REUSE_GRACE_MS,
    // Where our edges and ingress connect from: their X-Forwarded-For entries are passed over to find the client.
    clientAddressOf: createClientAddressOf({ trustedProxies: config.BV_TRUSTED_PROXIES }),
  });
  // After the migrations (the auth migration creates the role row's table when e-commerce has not yet).
  const role = createWriterRoleReader(sql);
  const current = await role.current();
  if (current && current.writerRegion !== current.localRegion) {
    // The writer's security ensures the account; replication brings it here (a write here would be refused).
    log.info("admin account left to the writer region", { writer: current.writerRegion });
  } else {
    await auth.ensureAdmin(config.BV_ADMIN_EMAIL, config.BV_ADMIN_PASSWORD);
    log.info("admin account ensured", { email: config.BV_ADMIN_EMAIL });
  }
  const app = createServiceApp({
    name: context.name,
    checks: portChecks(context.ports, context.name, ["sql"]),
  });
  // While this region is a replica, every auth write goes to the writer region's ingress, as e-commerce's order
  // writes do (same hop signature, read-your-writes wait and failure answers); the JWKS and key rotation stay here.
  app.use(
    "/api/v1/auth/*",
    forwardWritesToWriter({
      role,
      isWrite: isAuthWrite,
      subject: "Accounts and sessions",
      label: "auth write",
      positions: sqlReplicationPositions(sql),
      ingressUrlOf: (r) =>
        r === "east" || r === "west" ? `http://${config.connectHost}:${config.regions[r].ingressPort}` : undefined,
      timeoutMs: config.BV_CALL_TIMEOUT_MS,
      signingKey,
    }),
  );
  app.route("/", auth.routes);
  return app;
};
