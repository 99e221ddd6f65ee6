/** @module The regions the edge fronts, from config: east first (the order writer), then west. */
import type { Config } from "../shared/config/config.ts";
import { EDGE_CACHE_DEFAULTS, EDGE_RATE_LIMIT_DEFAULTS, type EdgeOptions, type EdgeRegion } from "./worker.ts";

/** Flash-sale fan-out: the defaults of `createFlashSaleFanout` (20,000 clients, 256 frames each, 100 kept). */
const EDGE_FLASH_SALE_DEFAULTS = Object.freeze({});

export function edgeRegionsOf(config: Config): EdgeRegion[] {
  return (["east", "west"] as const).map((name) => ({
    name,
    url: `http://${config.connectHost}:${config.regions[name].ingressPort}`,
  }));
}

/**
 * Everything `createEdge` needs from config: regions, client affinity, pre-auth against every region's JWKS,
 * cache, limits, flash-sale fan-out (the WebSocket connector is runtime-specific: `main.ts` adds it).
 */
export function edgeOptionsOf(config: Config): EdgeOptions {
  const regions = edgeRegionsOf(config);
  return {
    regions,
    upstreamTimeoutMs: config.BV_CALL_TIMEOUT_MS,
    affinity: { ttlMs: config.BV_EDGE_AFFINITY_TTL_MS, entriesMax: config.BV_EDGE_AFFINITY_ENTRIES_MAX },
    auth: {
      jwksUrls: regions.map((region) => `${region.url}/.well-known/jwks.json`),
      issuer: config.BV_JWT_ISSUER,
      audience: config.BV_JWT_AUDIENCE,
    },
    cache: EDGE_CACHE_DEFAULTS,
    rateLimit: EDGE_RATE_LIMIT_DEFAULTS,
    flashSales: EDGE_FLASH_SALE_DEFAULTS,
  };
}
