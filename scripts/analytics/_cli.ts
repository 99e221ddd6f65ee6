/**
 * @module
 * What the analytics commands share: argument parsing that fails with a usage line (exit 64, EX_USAGE),
 * and the region's ports chosen like the services choose them (`BV_MODE`).
 */
import { parseArgs } from "node:util";
import { type Config, loadConfigOrExit, type Region, REGIONS } from "../../shared/config/config.ts";
import { embeddedRegionPorts, realRegionPorts, type RegionPorts } from "../../regional/wiring/region_ports.ts";

export const EXIT_USAGE = 64;

/** Parses `args` (string flags only) strictly; prints `usage` and exits 64 on an unknown or malformed flag. */
export function parseOrExit(
  args: readonly string[],
  options: Readonly<Record<string, { readonly type: "string" }>>,
  usage: string,
): Record<string, string | undefined> {
  try {
    const { values } = parseArgs({ args: [...args], options: { ...options }, strict: true, allowPositionals: false });
    return values as Record<string, string | undefined>;
  } catch (error) {
    console.error(`${(error as Error).message}\nusage: ${usage}`);
    Deno.exit(EXIT_USAGE);
  }
}

/** A whole number above 0 from a flag (undefined when absent), or exits 64 naming the flag. */
export function positiveIntegerOrExit(name: string, value: string | undefined, usage: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (Number.isSafeInteger(n) && n > 0) return n;
  console.error(`--${name} is "${value}": use a whole number above 0\nusage: ${usage}`);
  Deno.exit(EXIT_USAGE);
}

/** The region from `--region`, else `BV_REGION`, else east; exits 64 on an unknown one. */
export function regionOrExit(flag: string | undefined, usage: string): Region {
  const value = flag ?? Deno.env.get("BV_REGION") ?? "east";
  if ((REGIONS as readonly string[]).includes(value)) return value as Region;
  console.error(`Region "${value}" is unknown: use ${REGIONS.join(" or ")}\nusage: ${usage}`);
  Deno.exit(EXIT_USAGE);
}

/**
 * The region's ports: the real services with `BV_MODE=infra`, else the embedded stores under `BV_DATA_DIR`
 * (stop `deno task start` first: PGlite and the embedded log have one writer).
 */
export function regionPorts(config: Config, region: Region, processName: string): RegionPorts {
  return config.BV_MODE === "infra"
    ? realRegionPorts(config, region, `${processName}-${region}`)
    : embeddedRegionPorts(config, region);
}

export { loadConfigOrExit };
