/**
 * @module
 * Test helpers of the analytics commands: a {@linkcode CommandIo} with a fixed clock that records what the
 * command printed and which ports it opened, and a temporary data directory for embedded ports.
 */
import { loadConfig, type Region } from "../../shared/config/config.ts";
import { embeddedRegionPorts, type RegionPorts } from "../../regional/wiring/region_ports.ts";
import type { CommandIo } from "./_cli.ts";

/** A command's io and what it printed. */
export interface RecordingIo extends CommandIo {
  readonly printed: { readonly out: string[]; readonly err: string[] };
  /** Regions whose ports the command opened, in order. */
  readonly opened: Region[];
}

/** Io for `args` at the fixed time `now`, on the ports `openPorts` makes. */
export function recordingIo(
  args: readonly string[],
  now: string,
  openPorts: (region: Region) => RegionPorts,
): RecordingIo {
  const printed = { out: [] as string[], err: [] as string[] };
  const opened: Region[] = [];
  return {
    args,
    env: () => undefined,
    now: () => new Date(now),
    out: (line) => void printed.out.push(line),
    err: (line) => void printed.err.push(line),
    openPorts: (region) => {
      opened.push(region);
      return openPorts(region);
    },
    printed,
    opened,
  };
}

/** Runs `test` with a temporary `BV_DATA_DIR` and a maker of embedded ports on it; removes it afterwards. */
export async function withEmbeddedDataDir(
  test: (embedded: (region: Region) => RegionPorts, dataDir: string) => Promise<void>,
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "bv-analytics-cli-" });
  try {
    const config = loadConfig({ BV_DATA_DIR: dataDir });
    await test((region) => embeddedRegionPorts(config, region), dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}
