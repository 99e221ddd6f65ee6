/**
 * @module
 * Stops what `scripts/infra_up.ts` started (Kafka: SIGTERM, SIGKILL after 20 s; PostgreSQL: `pg_ctl stop -m
 * fast`). Data under `.data/kafka` and `.data/pg` stays unless `--purge` is given. Only this checkout's
 * processes are signalled (pid file, or port listener, checked against the command line); a port still held
 * by anything else afterwards is named, one line each, and the exit code is 1.
 *
 *     deno run -A scripts/infra_down.ts [east|west|all] [--purge]
 */
import { KAFKA_REGIONS, purgeKafkaData, stopKafka, stopMirrorMaker } from "./kafka/mod.ts";
import { purgePostgresData, stopPostgres } from "./postgres/mod.ts";
import { failOnPortProblems, parseRegions, portProblems } from "./infra_up.ts";

async function main(): Promise<void> {
  const purge = Deno.args.includes("--purge");
  const regions = parseRegions(Deno.args.filter((arg) => arg !== "--purge"));
  // MirrorMaker first, while both brokers still take its last offset commits; it stays up when only one region
  // stops, and resumes once that broker is back.
  if (regions.length === KAFKA_REGIONS.length) await stopMirrorMaker();
  await Promise.all(regions.map((region) => stopKafka(region)));
  if (purge) { for (const region of regions) await purgeKafkaData(region); }
  await Promise.all(regions.map((region) => stopPostgres(region)));
  if (purge) { for (const region of regions) await purgePostgresData(region); }
  failOnPortProblems(await portProblems(regions), "Stopped what this checkout runs");
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`[infra] ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
