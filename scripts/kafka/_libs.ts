/**
 * @module
 * The Kafka jars, fetched once from Maven Central (through `infra/kafka/pom.xml`) into
 * `.cache/kafka/<version>/libs`, with a marker written after a complete download. Private to `scripts/kafka/`;
 * `ensureKafkaLibs` is exported by `./mod.ts`.
 */
import { dirname } from "node:path";
import {
  KAFKA_LIBS_DIR,
  KAFKA_LIBS_LOCK,
  KAFKA_LIBS_MARKER,
  KAFKA_POM,
  KAFKA_VERSION,
  repoRelative,
} from "./_config.ts";
import { checkPrerequisites, exists, ignoreNotFound, run } from "./_process.ts";
import { withStartLock } from "./_start_lock.ts";

/** Where progress lines go. */
type ProgressLog = (line: string) => void;

/**
 * Bound on Maven resolving and copying the ~90 jars (~80 MB) on first use: about a minute on a good line; a
 * stalled repository connection otherwise hangs `infra:up` with no end.
 */
export const MAVEN_RESOLVE_TIMEOUT_MS_DEFAULT = 10 * 60_000;
/** Waiting for another process's download is bounded by the download's own bound plus this. */
const LOCK_MARGIN_MS = 10_000;
const PROGRESS_EVERY_MS = 5_000;

let libsReady: Promise<void> | undefined;

/**
 * Downloads the Kafka jars from Maven Central once; later calls (and later runs) return at once. Within a
 * process the download is shared; across processes a lock keeps a second one from emptying the folder the
 * first is filling.
 */
export function ensureKafkaLibs(log: ProgressLog = console.log): Promise<void> {
  libsReady ??= downloadLibsOnce(log).catch((error) => {
    libsReady = undefined;
    throw error;
  });
  return libsReady;
}

async function downloadLibsOnce(log: ProgressLog): Promise<void> {
  if (await exists(KAFKA_LIBS_MARKER)) {
    log(`[kafka] jars for Kafka ${KAFKA_VERSION} already cached in ${repoRelative(KAFKA_LIBS_DIR)}`);
    return;
  }
  await Deno.mkdir(dirname(KAFKA_LIBS_LOCK), { recursive: true });
  const lock = {
    lockFile: KAFKA_LIBS_LOCK,
    what: `downloading the Kafka ${KAFKA_VERSION} jars`,
    waitMs: MAVEN_RESOLVE_TIMEOUT_MS_DEFAULT + LOCK_MARGIN_MS,
    say: (line: string) => log(`[kafka] ${line}`),
  };
  await withStartLock(lock, async () => {
    // Another process may have finished the download while this one waited.
    if (await exists(KAFKA_LIBS_MARKER)) log(`[kafka] jars for Kafka ${KAFKA_VERSION} downloaded by another process`);
    else await downloadLibs(log);
  });
}

async function downloadLibs(log: ProgressLog): Promise<void> {
  await checkPrerequisites(["mvn"]);
  log(`[kafka] downloading Kafka ${KAFKA_VERSION} jars from Maven Central into ${repoRelative(KAFKA_LIBS_DIR)}`);
  // A folder without the marker may hold a partial download; start it over.
  await Deno.remove(KAFKA_LIBS_DIR, { recursive: true }).catch(ignoreNotFound);
  await Deno.mkdir(KAFKA_LIBS_DIR, { recursive: true });
  const startedMs = Date.now();
  const ticker = setInterval(async () => {
    const jars = await countJars();
    log(`[kafka] ... ${jars} jars so far (${Math.round((Date.now() - startedMs) / 1000)} s)`);
  }, PROGRESS_EVERY_MS);
  try {
    await run("mvn", [
      "-q",
      "-B",
      "-f",
      KAFKA_POM,
      "dependency:copy-dependencies",
      `-DoutputDirectory=${KAFKA_LIBS_DIR}`,
    ], { timeoutMs: MAVEN_RESOLVE_TIMEOUT_MS_DEFAULT, timeoutName: "MAVEN_RESOLVE_TIMEOUT_MS_DEFAULT" });
  } finally {
    clearInterval(ticker);
  }
  const jars = await countJars();
  if (jars === 0) throw new Error(`Maven finished but ${repoRelative(KAFKA_LIBS_DIR)} holds no jars`);
  await Deno.writeTextFile(
    KAFKA_LIBS_MARKER,
    JSON.stringify({ kafkaVersion: KAFKA_VERSION, jars, completedAt: new Date().toISOString() }) + "\n",
  );
  log(`[kafka] ${jars} jars downloaded in ${Math.round((Date.now() - startedMs) / 1000)} s`);
}

async function countJars(): Promise<number> {
  let count = 0;
  for await (const entry of Deno.readDir(KAFKA_LIBS_DIR)) if (entry.name.endsWith(".jar")) count++;
  return count;
}
