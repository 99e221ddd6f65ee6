/**
 * @module
 * `deno task analytics:replay -- [--region=east|west] [--quiet-ms=N] [--timeout-ms=N] [--lines-max=N]
 * [--paid-topic=T] [--canceled-topic=T]`: rebuilds the revenue projection from the order topics (earliest
 * offset, fresh consumer group, in memory) and prints its parity with the live `revenue_minute`, window by
 * window. Exit 0 when every window is equal, 1 on a mismatch, 2 when the replay could not finish (joining the
 * consumer group counts toward `--timeout-ms`), 64 on bad arguments, 69 when the embedded data directory is in
 * use (stop `deno task start` first). Run it when the live projection has caught up.
 */
import { formatParity, replayRevenue, REVENUE_TOPICS } from "../../regional/ecommerce/analytics/mod.ts";
import {
  type CommandIo,
  parseFlags,
  positiveInteger,
  processIo,
  regionOf,
  stringFlag,
  withRegionPorts,
  withUsage,
} from "./_cli.ts";

const USAGE = "deno task analytics:replay -- [--region=east|west] [--quiet-ms=N] [--timeout-ms=N] " +
  "[--lines-max=N] [--paid-topic=T] [--canceled-topic=T]";
const EXIT_MISMATCH = 1;
export const EXIT_FAILED = 2;

/** Runs the command; resolves with its exit code. */
export function replayRevenueCommand(io: CommandIo): Promise<number> {
  return withUsage(io, async () => {
    const flags = parseFlags(io.args, {
      region: { type: "string" },
      "quiet-ms": { type: "string" },
      "timeout-ms": { type: "string" },
      "lines-max": { type: "string" },
      "paid-topic": { type: "string" },
      "canceled-topic": { type: "string" },
    }, USAGE);
    const region = regionOf(stringFlag(flags, "region"), io, USAGE);
    const quietMs = positiveInteger("quiet-ms", stringFlag(flags, "quiet-ms"), USAGE);
    const timeoutMs = positiveInteger("timeout-ms", stringFlag(flags, "timeout-ms"), USAGE);
    const linesMax = positiveInteger("lines-max", stringFlag(flags, "lines-max"), USAGE);
    const topics = {
      paid: stringFlag(flags, "paid-topic") ?? REVENUE_TOPICS.paid,
      canceled: stringFlag(flags, "canceled-topic") ?? REVENUE_TOPICS.canceled,
    };
    try {
      return await withRegionPorts(
        io,
        { region, processName: "analytics-replay" },
        (ports) => Promise.all([ports.sql(), ports.eventLog()]),
        async ([sql, eventLog]) => {
          const started = performance.now();
          const parity = await replayRevenue({ sql, eventLog, region, topics, quietMs, timeoutMs });
          io.out(formatParity(parity, { linesMax }));
          io.out(`replay of ${region} took ${Math.round(performance.now() - started)} ms`);
          return parity.ok ? 0 : EXIT_MISMATCH;
        },
      );
    } catch (error) {
      io.err(`replay of ${region} failed: ${(error as Error).message}`);
      return EXIT_FAILED;
    }
  });
}

if (import.meta.main) Deno.exit(await replayRevenueCommand(processIo()));
