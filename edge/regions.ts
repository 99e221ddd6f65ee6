/** @module The regions the edge fronts, from config: east first (the order writer), then west. */
import type { Config } from "../shared/config/config.ts";
import type { EdgeRegion } from "./worker.ts";

export function edgeRegionsOf(config: Config): EdgeRegion[] {
  return (["east", "west"] as const).map((name) => ({
    name,
    url: `http://${config.BV_HOST}:${config.regions[name].ingressPort}`,
  }));
}
