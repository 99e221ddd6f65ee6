/**
 * @module
 * The token verifier of a regional service: the union of every region's JWKS (its own first), fetched over
 * HTTP from each region's security service, cached, reloaded on an unknown `kid`; a region that stops
 * answering keeps its last keys (`jwks_union.ts`). Tokens are global (seed 000 section 5), which is what
 * lets an order write forwarded to the writer region, or a failover to the other region, keep its token.
 */
import { createTokenVerifier } from "../../shared/auth/mod.ts";
import { type Config, type Region, REGIONS } from "../../shared/config/config.ts";
import { createJwksUnion } from "./jwks_union.ts";

export function regionalVerifier(config: Config, region: Region): ReturnType<typeof createTokenVerifier> {
  const regions = [region, ...REGIONS.filter((r) => r !== region)];
  const union = createJwksUnion({
    urls: regions.map((r) =>
      `http://${config.connectHost}:${config.regions[r].servicePorts.security}/.well-known/jwks.json`
    ),
  });
  return createTokenVerifier({
    jwks: union.load,
    issuer: config.BV_JWT_ISSUER,
    audience: config.BV_JWT_AUDIENCE,
    // The JWKS max-age the auth service sends; rotation waits longer than this before a key signs.
    cacheMaxAgeMs: 60_000,
  });
}
