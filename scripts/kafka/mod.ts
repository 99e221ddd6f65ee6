/**
 * @module
 * Local Kafka brokers, one per region, run from jars cached under `.cache/kafka/<version>/libs` (no Docker):
 * `ensureKafka("east")` downloads the jars once, writes a KRaft `server.properties`, formats storage on
 * first use, starts the JVM detached and waits until the broker answers. Used by `scripts/infra_up.ts`,
 * `scripts/infra_down.ts` and anything else (start:infra, test tasks) that needs a broker. MirrorMaker 2
 * between the two clusters (`ensureMirrorMaker`, `stopMirrorMaker`) lives in `./mirror.ts`.
 */
import { Kafka, logLevel } from "kafkajs";
// Its admin clients live as long as the platform: without this kafkajs spins a 1 ms timer per connection.
import "../../shared/adapters/kafka/_request_queue_fix.ts";
import {
  type BrokerLayout,
  brokerLayout,
  KAFKA_LIBS_DIR,
  KAFKA_LIBS_MARKER,
  KAFKA_LOG4J_CONFIG,
  KAFKA_POM,
  KAFKA_REGIONS,
  KAFKA_VERSION,
  type KafkaRegion,
  LOGS_DIR,
  REPO_ROOT,
  repoRelative,
  serverProperties,
} from "./_config.ts";
import {
  checkPrerequisites,
  exists,
  ignoreNotFound,
  isPortOpen,
  isProcessAlive,
  listenerPid,
  livePid,
  run,
  seconds,
  signalProcess,
  sleep,
  spawnDetached,
  tailFile,
  terminate,
} from "./_process.ts";

export { brokerLayout, checkPrerequisites, KAFKA_REGIONS, KAFKA_VERSION };
export type { BrokerLayout, KafkaRegion };
export {
  ensureMirrorMaker,
  type EnsureMirrorResult,
  isReplicating,
  MIRROR_START_TIMEOUT_MS_DEFAULT,
  MIRROR_STOP_GRACE_MS_DEFAULT,
  mirrorPid,
  stopForeignMirrorMakers,
  stopMirrorMaker,
} from "./mirror.ts";
export {
  isCheckpointedGroup,
  isMirroredTopic,
  MIRRORED_TOPIC_PATTERNS,
  mirrorLayout,
  REFRESH_TOPICS_INTERVAL_SECONDS,
  remoteTopicOf,
} from "./_mirror_config.ts";

/** Where progress lines go; the scripts print them, tests may collect them. */
export type ProgressLog = (line: string) => void;

/** How long `ensureKafka` waits for a started broker to answer. */
export const BROKER_START_TIMEOUT_MS_DEFAULT = 60_000;
/** How long `stopKafka` waits after SIGTERM before SIGKILL. */
export const BROKER_STOP_GRACE_MS_DEFAULT = 20_000;
const PROBE_TIMEOUT_MS = 3_000;
const POLL_INTERVAL_MS = 500;
const PROGRESS_EVERY_MS = 5_000;

/** The bootstrap servers of a region's local broker, e.g. `["127.0.0.1:9092"]`. */
export function kafkaBrokersOf(region: KafkaRegion): string[] {
  return [`127.0.0.1:${brokerLayout(region).port}`];
}

/** How long a start waits for a port held by a broker that is exiting before calling it foreign. */
const PORT_RELEASE_WAIT_MS = 5_000;

/** True once nothing accepts connections on `port`, polled for up to `waitMs`. */
async function portClosesWithin(port: number, waitMs: number): Promise<boolean> {
  const deadline = performance.now() + waitMs;
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    if (!(await isPortOpen(port, PROBE_TIMEOUT_MS))) return true;
  }
  return false;
}

/** True when a Kafka broker on 127.0.0.1:`port` answers a DescribeCluster request within `timeoutMs`. */
export async function isKafkaUp(port: number, timeoutMs: number = PROBE_TIMEOUT_MS): Promise<boolean> {
  // A closed port is the common case; answering it without a Kafka client is both faster and quieter.
  if (!(await isPortOpen(port, timeoutMs))) return false;
  const kafka = new Kafka({
    clientId: "bv-infra-probe",
    brokers: [`127.0.0.1:${port}`],
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin({ retry: { retries: 0 } });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("timed out")), timeoutMs);
    });
    const cluster = await Promise.race([admin.connect().then(() => admin.describeCluster()), timeout]);
    return cluster.brokers.length > 0;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    await admin.disconnect().catch(() => {});
  }
}

/**
 * Deletes the topics of an isolated platform run on `region`'s broker: every topic named `<prefix>…` or mirrored from
 * the other region as `<east|west>.<prefix>…`. Journeys and bench runs each make ~40 topics (×3 partitions, plus
 * dead-letter and mirrored twins); left behind, thousands of partitions accumulate and the broker's own CPU per request
 * grows with them. Resolves with how many were deleted; a broker that is down deletes nothing (logged by the caller).
 */
export async function deleteTopicsWithPrefix(region: KafkaRegion, prefix: string): Promise<number> {
  if (prefix.length < 4) throw new RangeError(`Refusing to delete topics by the short prefix "${prefix}"`);
  const kafka = new Kafka({
    clientId: "bv-topic-cleanup",
    brokers: kafkaBrokersOf(region),
    connectionTimeout: 3_000,
    requestTimeout: 15_000,
    retry: { retries: 2 },
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin({ retry: { retries: 2 } });
  try {
    await admin.connect();
    const owned = (await admin.listTopics()).filter((topic) =>
      topic.startsWith(prefix) || KAFKA_REGIONS.some((source) => topic.startsWith(`${source}.${prefix}`))
    );
    // Bounded requests: the broker deletes each batch before answering.
    for (let i = 0; i < owned.length; i += 100) {
      await admin.deleteTopics({ topics: owned.slice(i, i + 100), timeout: 15_000 });
    }
    return owned.length;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

let libsReady: Promise<void> | undefined;

/** Downloads the Kafka jars from Maven Central once; later calls (and later runs) return at once. */
export function ensureKafkaLibs(log: ProgressLog = console.log): Promise<void> {
  libsReady ??= downloadLibs(log).catch((error) => {
    libsReady = undefined;
    throw error;
  });
  return libsReady;
}

async function downloadLibs(log: ProgressLog): Promise<void> {
  if (await exists(KAFKA_LIBS_MARKER)) {
    log(`[kafka] jars for Kafka ${KAFKA_VERSION} already cached in ${repoRelative(KAFKA_LIBS_DIR)}`);
    return;
  }
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
    ]);
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

/** What `ensureKafka` did. */
export interface EnsureKafkaResult {
  readonly region: KafkaRegion;
  readonly brokers: string[];
  /** false when a healthy broker was already there. */
  readonly started: boolean;
}

/** Makes sure the region's broker is up and answering: idempotent, safe to call from several scripts. */
export async function ensureKafka(
  region: KafkaRegion,
  options: { readonly log?: ProgressLog; readonly startTimeoutMs?: number } = {},
): Promise<EnsureKafkaResult> {
  const log = options.log ?? console.log;
  const timeoutMs = options.startTimeoutMs ?? BROKER_START_TIMEOUT_MS_DEFAULT;
  const layout = brokerLayout(region);
  const say: ProgressLog = (line) => log(`[kafka:${region}] ${line}`);
  const result = { region, brokers: kafkaBrokersOf(region) };

  if (await isKafkaUp(layout.port)) {
    say(`already up on 127.0.0.1:${layout.port}; nothing to do`);
    return { ...result, started: false };
  }
  const runningPid = await brokerPid(layout);
  if (runningPid !== undefined) {
    say(`broker pid ${runningPid} is running but not answering yet; waiting for it`);
    await waitUntilUp(layout, runningPid, timeoutMs, say);
    return { ...result, started: false };
  }
  for (const port of [layout.port, layout.controllerPort]) {
    // A broker that was just killed can hold its listeners for a moment after its pid is gone: wait that out.
    if (await isPortOpen(port, PROBE_TIMEOUT_MS) && !(await portClosesWithin(port, PORT_RELEASE_WAIT_MS))) {
      throw new Error(
        `Port ${port} is in use by something that is not a healthy Kafka broker; free it or set ` +
          `KAFKA_${region.toUpperCase()}_PORT to another port`,
      );
    }
  }
  await checkPrerequisites(["java"]);
  await ensureKafkaLibs(log);
  await Deno.mkdir(layout.dataDir, { recursive: true });
  await Deno.mkdir(LOGS_DIR, { recursive: true });
  await Deno.writeTextFile(layout.propertiesFile, serverProperties(layout));
  await formatStorageOnce(layout, say);

  say(`starting broker on 127.0.0.1:${layout.port} (log: ${repoRelative(layout.logFile)})`);
  await Deno.writeTextFile(layout.logFile, `\n=== start ${new Date().toISOString()} ===\n`, { append: true });
  const pid = spawnDetached(brokerCommand(layout), layout.logFile, REPO_ROOT);
  await Deno.writeTextFile(layout.pidFile, `${pid}\n`);
  await waitUntilUp(layout, pid, timeoutMs, say);
  return { ...result, started: true };
}

function brokerCommand(layout: BrokerLayout): string[] {
  return [
    "java",
    // Two brokers and MirrorMaker share 2 cores and a dev machine's memory.
    "-Xmx512m",
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    // Every pause with its wall-clock time, next to the broker's log (3 × 5 MB, rotated by the JVM): a stall
    // seen by a client can be matched to a broker pause, or ruled out.
    `-Xlog:gc:file=${LOGS_DIR}/kafka-${layout.region}-gc.log:time,uptime:filecount=3,filesize=5m`,
    "-Djava.awt.headless=true",
    `-Dlog4j2.configurationFile=${KAFKA_LOG4J_CONFIG}`,
    `-Dkafka.logs.dir=${LOGS_DIR}`,
    "-cp",
    `${KAFKA_LIBS_DIR}/*`,
    "kafka.Kafka",
    layout.propertiesFile,
  ];
}

/** Formats the KRaft metadata log unless `meta.properties` shows it was done before (data is kept). */
async function formatStorageOnce(layout: BrokerLayout, say: ProgressLog): Promise<void> {
  if (await exists(`${layout.dataDir}/meta.properties`)) return;
  say(`formatting storage in ${repoRelative(layout.dataDir)}`);
  // Static quorum (controller.quorum.voters), so `format` takes only a cluster id: no --standalone.
  await run("java", [
    "-Xmx256m",
    "-cp",
    `${KAFKA_LIBS_DIR}/*`,
    "kafka.tools.StorageTool",
    "format",
    "--cluster-id",
    randomClusterId(),
    "--config",
    layout.propertiesFile,
  ]);
}

/** A Kafka cluster id: 16 random bytes, base64url without padding, never starting with "-" (CLI-safe). */
function randomClusterId(): string {
  for (;;) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const id = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(
      /=+$/,
      "",
    );
    if (!id.startsWith("-")) return id;
  }
}

async function waitUntilUp(layout: BrokerLayout, pid: number, timeoutMs: number, say: ProgressLog) {
  const startedMs = Date.now();
  let nextProgressMs = startedMs + PROGRESS_EVERY_MS;
  while (Date.now() - startedMs < timeoutMs) {
    if (!(await isProcessAlive(pid))) {
      throw new Error(
        `Kafka ${layout.region} (pid ${pid}) exited during startup; last lines of ${repoRelative(layout.logFile)}:\n` +
          (await tailFile(layout.logFile, 20)),
      );
    }
    if (await isKafkaUp(layout.port, PROBE_TIMEOUT_MS)) {
      say(`up on 127.0.0.1:${layout.port} (pid ${pid}) after ${seconds(Date.now() - startedMs)}`);
      return;
    }
    if (Date.now() >= nextProgressMs) {
      say(`waiting for the broker to answer (${seconds(Date.now() - startedMs)} of ${seconds(timeoutMs)})`);
      nextProgressMs += PROGRESS_EVERY_MS;
    }
    await sleep(POLL_INTERVAL_MS);
  }
  throw new Error(
    `Kafka ${layout.region} did not answer on port ${layout.port} within ${seconds(timeoutMs)}; see ` +
      repoRelative(layout.logFile),
  );
}

/** Stops the region's broker if this tooling started it: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopKafka(
  region: KafkaRegion,
  options: { readonly log?: ProgressLog; readonly graceMs?: number } = {},
): Promise<boolean> {
  const log = options.log ?? console.log;
  const graceMs = options.graceMs ?? BROKER_STOP_GRACE_MS_DEFAULT;
  const layout = brokerLayout(region);
  const say: ProgressLog = (line) => log(`[kafka:${region}] ${line}`);
  const pid = await brokerPid(layout);
  if (pid === undefined) {
    await Deno.remove(layout.pidFile).catch(ignoreNotFound);
    say("not running (no live pid from infra_up); nothing to stop");
    return false;
  }
  say(`stopping broker pid ${pid} (SIGTERM; SIGKILL after ${seconds(graceMs)})`);
  await terminate(pid, {
    pidFile: layout.pidFile,
    mustContain: layout.propertiesFile,
    graceMs,
    pollIntervalMs: POLL_INTERVAL_MS,
    progressEveryMs: PROGRESS_EVERY_MS,
    say,
  });
  return true;
}

/** Deletes the region's topics, offsets and metadata (`.data/kafka/<region>`); the broker must be stopped. */
export async function purgeKafkaData(region: KafkaRegion, log: ProgressLog = console.log): Promise<void> {
  const layout = brokerLayout(region);
  if ((await brokerPid(layout)) !== undefined) {
    throw new Error(`Kafka ${region} is still running; stop it before purging ${repoRelative(layout.dir)}`);
  }
  await Deno.remove(layout.dir, { recursive: true }).catch(ignoreNotFound);
  log(`[kafka:${region}] deleted ${repoRelative(layout.dir)}`);
}

/** The pid from the pid file when that process is alive and is this region's broker. */
function brokerPid(layout: BrokerLayout): Promise<number | undefined> {
  return livePid(layout.pidFile, layout.propertiesFile);
}

/**
 * Stops a broker listening on the region's port that this checkout did not start (its command line names
 * another checkout's server.properties), so tests run on a cluster whose data this checkout owns. Returns
 * true when one was stopped.
 */
export async function stopForeignKafka(region: KafkaRegion, log: ProgressLog = console.log): Promise<boolean> {
  const layout = brokerLayout(region);
  const pid = await listenerPid(layout.port);
  if (pid === undefined || await isProcessAlive(pid, layout.propertiesFile)) return false;
  log(`[kafka:${region}] port ${layout.port} is held by pid ${pid}, not started by this checkout: stopping it`);
  signalProcess(pid, "SIGTERM");
  const startedMs = Date.now();
  while (await isProcessAlive(pid)) {
    if (Date.now() - startedMs > BROKER_STOP_GRACE_MS_DEFAULT) {
      signalProcess(pid, "SIGKILL");
      break;
    }
    await sleep(POLL_INTERVAL_MS);
  }
  return true;
}
