/**
 * @module
 * Brings up the local infrastructure the project owns: one Kafka broker per region (KRaft, no Docker),
 * MirrorMaker 2 between them (both regions only), and one PostgreSQL cluster per region (`scripts/postgres`,
 * from the installed server binaries).
 *
 *     deno run -A scripts/infra_up.ts [east|west|all]     (default: all)
 *
 * Idempotent: a healthy broker is left alone; the jars are downloaded once into `.cache/kafka/`.
 */
import {
  checkPrerequisites,
  ensureKafka,
  ensureKafkaLibs,
  ensureMirrorMaker,
  KAFKA_REGIONS,
  type KafkaRegion,
} from "./kafka/mod.ts";
import { ensurePostgres } from "./postgres/mod.ts";

/** Parses `[east|west|all]`; exits with one line on anything else. */
export function parseRegions(args: readonly string[]): KafkaRegion[] {
  const choice = args[0] ?? "all";
  if (choice === "all") return [...KAFKA_REGIONS];
  if ((KAFKA_REGIONS as readonly string[]).includes(choice)) return [choice as KafkaRegion];
  throw new TypeError(`Unknown region "${choice}"; use one of: ${[...KAFKA_REGIONS, "all"].join(", ")}`);
}

async function main(): Promise<void> {
  const startedMs = Date.now();
  const regions = parseRegions(Deno.args);
  await checkPrerequisites(["java", "mvn"]);
  await ensureKafkaLibs();
  // The brokers start side by side: most of each start is JVM warm-up, which overlaps well.
  const results = await Promise.all(regions.map((region) => ensureKafka(region)));
  for (const { region, brokers, started } of results) {
    console.log(
      `[infra] kafka ${region}: ${brokers.join(",")} ${started ? "(started)" : "(was already up)"}`,
    );
  }
  // MirrorMaker 2 copies the selected topics both ways once both clusters answer (scripts/kafka/mirror.ts).
  if (regions.length === KAFKA_REGIONS.length) {
    const mirror = await ensureMirrorMaker();
    console.log(`[infra] mirrormaker east<->west: pid ${mirror.pid} ${mirror.started ? "(started)" : "(was up)"}`);
  }
  // Each region's own PostgreSQL cluster (logical replication of orders needs settings the shared one lacks).
  for (const { region, url, started } of await Promise.all(regions.map((region) => ensurePostgres(region)))) {
    console.log(`[infra] postgres ${region}: ${url} ${started ? "(started)" : "(was already up)"}`);
  }
  console.log(`[infra] ready in ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`[infra] ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
