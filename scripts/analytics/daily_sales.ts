/**
 * @module
 * `deno task analytics:daily -- [--date=YYYY-MM-DD] [--region=east|west] [--allow-unsettled]`: recomputes one
 * UTC day of `daily_sales` from the region's orders tables (default: yesterday) and prints the rows.
 * Idempotent: a re-run replaces the day. A day is computed only once it is settled, 5 min after it ends
 * (`DAY_SETTLE_MS`: payments and cancels stamped on it may commit until then); `--allow-unsettled` accepts a
 * partial day instead (run it again later). Exit 0 on success, 1 on failure, 64 on bad arguments, 69 when the
 * embedded data directory is in use (stop `deno task start` first), 75 (EX_TEMPFAIL) when the day is not
 * settled yet: run it again after the time the message names.
 */
import { migrate } from "../../shared/ports/sql_migrate.ts";
import {
  analyticsMigrations,
  assertDaySettled,
  DayNotSettledError,
  runDailySales,
  utcDayOf,
  yesterdayUtc,
} from "../../regional/ecommerce/analytics/mod.ts";
import {
  type CommandIo,
  parseFlags,
  processIo,
  regionOf,
  stringFlag,
  UsageError,
  withRegionPorts,
  withUsage,
} from "./_cli.ts";

const USAGE = "deno task analytics:daily -- [--date=YYYY-MM-DD] [--region=east|west] [--allow-unsettled]";
const EXIT_FAILED = 1;
/** EX_TEMPFAIL: the day is not settled yet; the same command succeeds later. */
export const EXIT_NOT_SETTLED = 75;

/** Runs the command; resolves with its exit code. */
export function dailySalesCommand(io: CommandIo): Promise<number> {
  return withUsage(io, async () => {
    const flags = parseFlags(io.args, {
      date: { type: "string" },
      region: { type: "string" },
      "allow-unsettled": { type: "boolean" },
    }, USAGE);
    const date = stringFlag(flags, "date") ?? yesterdayUtc(io.now());
    try {
      utcDayOf(date);
    } catch (error) {
      throw new UsageError(`${(error as Error).message}\nusage: ${USAGE}`);
    }
    const region = regionOf(stringFlag(flags, "region"), io, USAGE);
    const allowUnsettled = flags["allow-unsettled"] === true;
    try {
      // Checked before the ports open: a nightly job started too early fails at once and touches nothing.
      if (!allowUnsettled) assertDaySettled(date, io.now());
      return await withRegionPorts(
        io,
        { region, processName: "analytics-daily" },
        (ports) => ports.sql(),
        async (sql) => {
          await migrate(sql, analyticsMigrations);
          const started = performance.now();
          const rows = await runDailySales(sql, { date, now: io.now, allowUnsettled });
          for (const row of rows) io.out(`${row.date} ${row.currency} revenue=${row.revenue} orders=${row.orders}`);
          const ms = Math.round(performance.now() - started);
          io.out(`daily_sales ${date} (${region}): ${rows.length} currencies written in ${ms} ms`);
          return 0;
        },
      );
    } catch (error) {
      if (error instanceof DayNotSettledError) {
        io.err(`${error.message}, or pass --allow-unsettled to write a partial day (a later run replaces it)`);
        return EXIT_NOT_SETTLED;
      }
      io.err(`daily_sales ${date} (${region}) failed: ${(error as Error).message}`);
      return EXIT_FAILED;
    }
  });
}

if (import.meta.main) Deno.exit(await dailySalesCommand(processIo()));
