/**
 * @module
 * `deno task analytics:daily -- --date=YYYY-MM-DD [--region=east|west]`: recomputes one UTC day of
 * `daily_sales` from the region's orders tables (default: yesterday) and prints the rows. Idempotent: a
 * re-run replaces the day. Exit 0 on success, 64 on bad arguments, 1 on failure.
 */
import { migrate } from "../../shared/ports/sql_migrate.ts";
import { analyticsMigrations, runDailySales, utcDayOf, yesterdayUtc } from "../../regional/ecommerce/analytics/mod.ts";
import { EXIT_USAGE, loadConfigOrExit, parseOrExit, regionOrExit, regionPorts } from "./_cli.ts";

const USAGE = "deno task analytics:daily -- [--date=YYYY-MM-DD] [--region=east|west]";

const args = parseOrExit(Deno.args, { date: { type: "string" }, region: { type: "string" } }, USAGE);
const date = args.date ?? yesterdayUtc(new Date());
try {
  utcDayOf(date);
} catch (error) {
  console.error(`${(error as Error).message}\nusage: ${USAGE}`);
  Deno.exit(EXIT_USAGE);
}
const region = regionOrExit(args.region, USAGE);
const ports = regionPorts(loadConfigOrExit(), region, "analytics-daily");
let code = 0;
try {
  const sql = await ports.sql();
  await migrate(sql, analyticsMigrations);
  const started = performance.now();
  const rows = await runDailySales(sql, { date });
  for (const row of rows) console.log(`${row.date} ${row.currency} revenue=${row.revenue} orders=${row.orders}`);
  console.log(
    `daily_sales ${date} (${region}): ${rows.length} currencies written in ${
      Math.round(performance.now() - started)
    } ms`,
  );
} catch (error) {
  console.error(`daily_sales ${date} (${region}) failed: ${(error as Error).message}`);
  code = 1;
} finally {
  await ports.close();
}
Deno.exit(code);
