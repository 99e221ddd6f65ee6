/**
 * @module
 * Brings up the local infrastructure the project owns: one Kafka broker per region (KRaft, no Docker),
 * MirrorMaker 2 between them (both regions only), and one PostgreSQL cluster per region (`scripts/postgres`,
 * from the installed server binaries).
 *
 *     deno run -A scripts/infra_up.ts [east|west|all]     (default: all)
 *
 * Idempotent: a healthy broker is left alone; the jars are downloaded once into `.cache/kafka/`. A port held
 * by anything but this checkout's broker or cluster stops it first, with one line per port naming the pid
 * and its command (nothing is signalled), and exit code 1.
 */
import {
  checkPrerequisites,
  ensureKafka,
  ensureKafkaLibs,
  ensureMirrorMaker,
  KAFKA_REGIONS,
  kafkaPortProblems,
  type KafkaRegion,
} from "./kafka/mod.ts";
import { ensurePostgres, postgresPortProblems } from "./postgres/mod.ts";

/** Parses `[east|west|all]`; exits with one line on anything else. */
export function parseRegions(args: readonly string[]): KafkaRegion[] {
  const choice = args[0] ?? "all";
  if (choice === "all") return [...KAFKA_REGIONS];
  if ((KAFKA_REGIONS as readonly string[]).includes(choice)) return [choice as KafkaRegion];
  throw new TypeError(`Unknown region "${choice}"; use one of: ${[...KAFKA_REGIONS, "all"].join(", ")}`);
}

/** One line per port of `regions` (Kafka client and controller, PostgreSQL) held by anything not ours. */
export async function portProblems(regions: readonly KafkaRegion[]): Promise<string[]> {
  const found = await Promise.all(
    regions.flatMap((region) => [kafkaPortProblems(region), postgresPortProblems(region)]),
  );
  return found.flat();
}

/** Prints each problem on its own line and throws, so the script exits non-zero; `then` says what was done. */
export function failOnPortProblems(problems: readonly string[], then: string): void {
  if (problems.length === 0) return;
  for (const line of problems) console.error(`[infra] ${line}`);
  throw new Error(`${then}: ${problems.length} port(s) held by other processes, see above`);
}

async function main(): Promise<void> {
  const startedMs = Date.now();
  const regions = parseRegions(Deno.args);
  // Before anything starts: a healthy foreign broker would otherwise be taken for ours.
  failOnPortProblems(await portProblems(regions), "Nothing was started");
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
