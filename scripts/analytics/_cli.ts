/**
 * @module
 * What the analytics commands share: strict argument parsing (a bad flag is a {@linkcode UsageError}, exit 64,
 * EX_USAGE), the region's ports chosen like the services choose them (`BV_MODE`), and refusing at once, exit
 * 69, when the embedded data directory is held by another process. A command is a function of
 * {@linkcode CommandIo} that resolves with its exit code, so tests run it with their own clock and ports; only
 * its entry point (`import.meta.main`) exits the process.
 */
import { parseArgs } from "node:util";
import { loadConfigOrExit, type Region, REGIONS } from "../../shared/config/config.ts";
import {
  embeddedRegionPorts,
  LockHeldError,
  realRegionPorts,
  type RegionPorts,
} from "../../regional/wiring/region_ports.ts";

export const EXIT_USAGE = 64;
/**
 * EX_UNAVAILABLE: the embedded data directory is in use (`deno task start` runs on it). PGlite and the event
 * log's files have one writer, so the command does not open them; stop the platform first.
 */
export const EXIT_DATA_DIR_IN_USE = 69;

/** A flag or argument the command cannot take; its message ends with the usage line. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** What a command reads and writes besides its ports' stores: replaced in tests. */
export interface CommandIo {
  readonly args: readonly string[];
  readonly env: (name: string) => string | undefined;
  readonly now: () => Date;
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** The region's ports: the real services with `BV_MODE=infra`, else the embedded stores under `BV_DATA_DIR`. */
  readonly openPorts: (region: Region, processName: string) => RegionPorts;
}

/** The process's own arguments, environment, clock, console and configured ports. */
export function processIo(): CommandIo {
  return {
    args: Deno.args,
    env: (name) => Deno.env.get(name),
    now: () => new Date(),
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    openPorts: (region, processName) => {
      const config = loadConfigOrExit();
      return config.BV_MODE === "infra"
        ? realRegionPorts(config, region, `${processName}-${region}`)
        : embeddedRegionPorts(config, region);
    },
  };
}

/** Runs `command` and maps a {@linkcode UsageError} to its message and exit 64. */
export async function withUsage(io: CommandIo, command: () => Promise<number>): Promise<number> {
  try {
    return await command();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(error.message);
    return EXIT_USAGE;
  }
}

type FlagOptions = Readonly<Record<string, { readonly type: "string" | "boolean" }>>;

/** Parses `args` strictly; throws a {@linkcode UsageError} on an unknown or malformed flag. */
export function parseFlags(
  args: readonly string[],
  options: FlagOptions,
  usage: string,
): Record<string, string | boolean | undefined> {
  try {
    const { values } = parseArgs({ args: [...args], options: { ...options }, strict: true, allowPositionals: false });
    return values;
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\nusage: ${usage}`);
  }
}

/** The string value of flag `name` (undefined when absent). */
export function stringFlag(values: Record<string, string | boolean | undefined>, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/** A whole number above 0 from a flag (undefined when absent); throws a {@linkcode UsageError} naming the flag. */
export function positiveInteger(name: string, value: string | undefined, usage: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (Number.isSafeInteger(n) && n > 0) return n;
  throw new UsageError(`--${name} is "${value}": use a whole number above 0\nusage: ${usage}`);
}

/** The region from `--region`, else `BV_REGION`, else east; throws a {@linkcode UsageError} on an unknown one. */
export function regionOf(flag: string | undefined, io: CommandIo, usage: string): Region {
  const value = flag ?? io.env("BV_REGION") ?? "east";
  if ((REGIONS as readonly string[]).includes(value)) return value as Region;
  throw new UsageError(`Region "${value}" is unknown: use ${REGIONS.join(" or ")}\nusage: ${usage}`);
}

/**
 * Opens the region's ports with `open`, runs `work` on what it opened, and closes the ports whatever happens.
 * When the embedded data directory is held by another process, `work` never runs: the holder is named and
 * the command ends with {@linkcode EXIT_DATA_DIR_IN_USE}.
 */
export async function withRegionPorts<T>(
  io: CommandIo,
  target: { readonly region: Region; readonly processName: string },
  open: (ports: RegionPorts) => Promise<T>,
  work: (opened: T) => Promise<number>,
): Promise<number> {
  const ports = io.openPorts(target.region, target.processName);
  try {
    let opened: T;
    try {
      opened = await open(ports);
    } catch (error) {
      if (!(error instanceof LockHeldError)) throw error;
      io.err(error.message);
      return EXIT_DATA_DIR_IN_USE;
    }
    return await work(opened);
  } finally {
    await ports.close();
  }
}
