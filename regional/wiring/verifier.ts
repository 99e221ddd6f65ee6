/**
 * @module
 * The token verifier of a regional service: the region's own JWKS, fetched over HTTP from its security
 * service (cached; refetched on an unknown `kid`).
 */
import { createTokenVerifier } from "../../shared/auth/mod.ts";
import type { Config, Region } from "../../shared/config/config.ts";

export function regionalVerifier(config: Config, region: Region): ReturnType<typeof createTokenVerifier> {
  const port = config.regions[region].servicePorts.security;
  return createTokenVerifier({
    jwks: new URL(`http://${config.BV_HOST}:${port}/.well-known/jwks.json`),
    issuer: config.BV_JWT_ISSUER,
    audience: config.BV_JWT_AUDIENCE,
  });
}
