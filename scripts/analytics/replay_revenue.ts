/**
 * @module
 * `deno task analytics:replay -- [--region=east|west] [--quiet-ms=N] [--timeout-ms=N] [--lines-max=N]
 * [--paid-topic=T] [--canceled-topic=T]`: rebuilds the revenue projection from the order topics (earliest
 * offset, fresh consumer group, in memory) and prints its parity with the live `revenue_minute`, window by
 * window. Exit 0 when every window is equal, 1 on a mismatch, 2 when the replay could not finish, 64 on
 * bad arguments. Run it when the live projection has caught up.
 */
import { formatParity, replayRevenue, REVENUE_TOPICS } from "../../regional/ecommerce/analytics/mod.ts";
import { loadConfigOrExit, parseOrExit, positiveIntegerOrExit, regionOrExit, regionPorts } from "./_cli.ts";

const USAGE = "deno task analytics:replay -- [--region=east|west] [--quiet-ms=N] [--timeout-ms=N] " +
  "[--lines-max=N] [--paid-topic=T] [--canceled-topic=T]";
const EXIT_MISMATCH = 1;
const EXIT_FAILED = 2;

const args = parseOrExit(Deno.args, {
  region: { type: "string" },
  "quiet-ms": { type: "string" },
  "timeout-ms": { type: "string" },
  "lines-max": { type: "string" },
  "paid-topic": { type: "string" },
  "canceled-topic": { type: "string" },
}, USAGE);
const region = regionOrExit(args.region, USAGE);
const quietMs = positiveIntegerOrExit("quiet-ms", args["quiet-ms"], USAGE);
const timeoutMs = positiveIntegerOrExit("timeout-ms", args["timeout-ms"], USAGE);
const linesMax = positiveIntegerOrExit("lines-max", args["lines-max"], USAGE);
const topics = {
  paid: args["paid-topic"] ?? REVENUE_TOPICS.paid,
  canceled: args["canceled-topic"] ?? REVENUE_TOPICS.canceled,
};
const ports = regionPorts(loadConfigOrExit(), region, "analytics-replay");
let code = 0;
try {
  const [sql, eventLog] = await Promise.all([ports.sql(), ports.eventLog()]);
  const started = performance.now();
  const parity = await replayRevenue({ sql, eventLog, region, topics, quietMs, timeoutMs });
  console.log(formatParity(parity, { linesMax }));
  console.log(`replay of ${region} took ${Math.round(performance.now() - started)} ms`);
  code = parity.ok ? 0 : EXIT_MISMATCH;
} catch (error) {
  console.error(`replay of ${region} failed: ${(error as Error).message}`);
  code = EXIT_FAILED;
} finally {
  await ports.close();
}
Deno.exit(code);
