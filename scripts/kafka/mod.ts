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
  brokerPortVerdict,
  KAFKA_LIBS_DIR,
  KAFKA_LOG4J_CONFIG,
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
  livePid,
  portHolder,
  run,
  seconds,
  sleep,
  spawnDetached,
  tailFile,
  terminate,
} from "./_process.ts";
import { withStartLock } from "./_start_lock.ts";
import { ensureKafkaLibs, MAVEN_RESOLVE_TIMEOUT_MS_DEFAULT } from "./_libs.ts";
import { BROKER_STOP_GRACE_MS_DEFAULT, kafkaPortProblems, stopForeignKafka } from "./_ports.ts";

export { BROKER_STOP_GRACE_MS_DEFAULT, kafkaPortProblems, stopForeignKafka };

export { brokerLayout, brokerPortVerdict, checkPrerequisites, KAFKA_REGIONS, KAFKA_VERSION };
export type { BrokerLayout, KafkaRegion };
export type { PortHolder, PortVerdict } from "./_process.ts";
export { ensureKafkaLibs, MAVEN_RESOLVE_TIMEOUT_MS_DEFAULT };
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
/** Bound on Kafka's StorageTool formatting a region's empty metadata log (a few seconds of JVM start). */
export const STORAGE_FORMAT_TIMEOUT_MS_DEFAULT = 60_000;
/** Waiting for another process's start lock is bounded by that start's own bounds plus this. */
const START_LOCK_MARGIN_MS = 10_000;
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

/** What `ensureKafka` did. */
export interface EnsureKafkaResult {
  readonly region: KafkaRegion;
  readonly brokers: string[];
  /** false when a healthy broker was already there. */
  readonly started: boolean;
}

/**
 * Makes sure the region's broker is up and answering: idempotent, safe to call from several scripts and
 * processes at once (a per-region start lock: only one of them formats storage and spawns the JVM).
 */
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
  await checkPrerequisites(["java"]);
  // Outside the region's lock: a first download takes minutes and has a lock of its own.
  await ensureKafkaLibs(log);
  await Deno.mkdir(layout.dir, { recursive: true });
  const lock = {
    lockFile: layout.lockFile,
    what: `starting Kafka ${region}`,
    waitMs: timeoutMs + STORAGE_FORMAT_TIMEOUT_MS_DEFAULT + START_LOCK_MARGIN_MS,
    hint: `see ${repoRelative(layout.logFile)}`,
    say,
  };
  const started = await withStartLock(lock, () => startLocked(layout, timeoutMs, say));
  return { ...result, started };
}

/** The rest of `ensureKafka`, run holding the region's start lock; resolves true when it started the broker. */
async function startLocked(layout: BrokerLayout, timeoutMs: number, say: ProgressLog): Promise<boolean> {
  // Another process may have started the broker while this one waited for the lock.
  if (await isKafkaUp(layout.port)) {
    say(`already up on 127.0.0.1:${layout.port}; nothing to do`);
    return false;
  }
  const runningPid = await brokerPid(layout);
  if (runningPid !== undefined) {
    say(`broker pid ${runningPid} is running but not answering yet; waiting for it`);
    await waitUntilUp(layout, runningPid, timeoutMs, say);
    return false;
  }
  for (const port of [layout.port, layout.controllerPort]) {
    // A broker that was just killed can hold its listeners for a moment after its pid is gone: wait that out.
    if (await isPortOpen(port, PROBE_TIMEOUT_MS) && !(await portClosesWithin(port, PORT_RELEASE_WAIT_MS))) {
      const verdict = brokerPortVerdict(layout, port, await portHolder(port));
      throw new Error(
        verdict.kind === "foreign"
          ? verdict.message
          : `Port ${port} is in use by something that is not a healthy Kafka broker; free it or set ` +
            `KAFKA_${layout.region.toUpperCase()}_PORT to another port`,
      );
    }
  }
  await Deno.mkdir(layout.dataDir, { recursive: true });
  await Deno.mkdir(LOGS_DIR, { recursive: true });
  await Deno.writeTextFile(layout.propertiesFile, serverProperties(layout));
  await formatStorageOnce(layout, say);

  say(`starting broker on 127.0.0.1:${layout.port} (log: ${repoRelative(layout.logFile)})`);
  await Deno.writeTextFile(layout.logFile, `\n=== start ${new Date().toISOString()} ===\n`, { append: true });
  const pid = spawnDetached(brokerCommand(layout), layout.logFile, REPO_ROOT);
  await Deno.writeTextFile(layout.pidFile, `${pid}\n`);
  await waitUntilUp(layout, pid, timeoutMs, say);
  return true;
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
  ], { timeoutMs: STORAGE_FORMAT_TIMEOUT_MS_DEFAULT, timeoutName: "STORAGE_FORMAT_TIMEOUT_MS_DEFAULT" });
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

/**
 * Stops the region's broker if this checkout started it: SIGTERM, then SIGKILL after `graceMs`. Found by its
 * pid file, or, when that is missing or stale, by the process on its port whose command line is this
 * checkout's broker; anything else on the port is left alone (`kafkaPortProblems` names it).
 */
export async function stopKafka(
  region: KafkaRegion,
  options: { readonly log?: ProgressLog; readonly graceMs?: number } = {},
): Promise<boolean> {
  const log = options.log ?? console.log;
  const graceMs = options.graceMs ?? BROKER_STOP_GRACE_MS_DEFAULT;
  const layout = brokerLayout(region);
  const say: ProgressLog = (line) => log(`[kafka:${region}] ${line}`);
  const pid = await brokerPid(layout) ?? await unrecordedBrokerPid(layout, say);
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

/** This checkout's broker found on the region's port when its pid file does not name it (lost or overwritten). */
async function unrecordedBrokerPid(layout: BrokerLayout, say: ProgressLog): Promise<number | undefined> {
  const verdict = brokerPortVerdict(layout, layout.port, await portHolder(layout.port));
  if (verdict.kind !== "ours") return undefined;
  say(`broker pid ${verdict.pid} on port ${layout.port} is this checkout's but its pid file does not name it`);
  return verdict.pid;
}
