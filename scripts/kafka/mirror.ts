/**
 * @module
 * MirrorMaker 2 between the regional clusters, run like the brokers: a detached JVM (dedicated mode,
 * `org.apache.kafka.connect.mirror.MirrorMaker`) from the cached jars, its pid in `.data/kafka/mirror/` and
 * its log in `.data/logs/kafka-mirror.log`. "Up" means replicating, not merely alive: each flow's heartbeats
 * must arrive, mirrored, in the other cluster (`east.heartbeats` in west, `west.heartbeats` in east).
 */
import { Kafka, logLevel } from "kafkajs";
// Its admin clients live as long as the platform: without this kafkajs spins a 1 ms timer per connection.
import "../../shared/adapters/kafka/_request_queue_fix.ts";
import {
  brokerLayout,
  KAFKA_LIBS_DIR,
  KAFKA_REGIONS,
  type KafkaRegion,
  LOGS_DIR,
  REPO_ROOT,
  repoRelative,
} from "./_config.ts";
import {
  HEARTBEATS_TOPIC,
  mirrorFlows,
  type MirrorLayout,
  mirrorLayout,
  mirrorMakerProperties,
  remoteTopicOf,
} from "./_mirror_config.ts";
import {
  checkPrerequisites,
  ignoreNotFound,
  isProcessAlive,
  livePid,
  seconds,
  sleep,
  spawnDetached,
  tailFile,
  terminate,
} from "./_process.ts";
import { ensureMirrorStorageTopics } from "./_mirror_storage.ts";
import { withStartLock } from "./_start_lock.ts";
// A cycle (mod.ts re-exports this module) that is safe: isKafkaUp is only called, never read at load time.
import { isKafkaUp } from "./mod.ts";

/** Where progress lines go. */
type ProgressLog = (line: string) => void;

/** How long `ensureMirrorMaker` waits for both flows to replicate (JVM start, Connect join, first refresh). */
export const MIRROR_START_TIMEOUT_MS_DEFAULT = 90_000;
/** How long `stopMirrorMaker` waits after SIGTERM (tasks stop and commit their offsets) before SIGKILL. */
export const MIRROR_STOP_GRACE_MS_DEFAULT = 20_000;
/** A running MirrorMaker counts as replicating when a mirrored heartbeat is at most this old. */
const HEARTBEAT_FRESH_MS = 10_000;
const PROBE_TIMEOUT_MS = 3_000;
const POLL_INTERVAL_MS = 500;
const PROGRESS_EVERY_MS = 10_000;
/** A start lock is waited for (and taken over once older than) the start timeout plus this. */
const STALE_LOCK_MARGIN_MS = 10_000;

/** What `ensureMirrorMaker` did. */
export interface EnsureMirrorResult {
  readonly pid: number;
  /** false when a replicating MirrorMaker was already there. */
  readonly started: boolean;
}

/** Makes sure MirrorMaker 2 runs and replicates both ways; idempotent. Both brokers must be up. */
export async function ensureMirrorMaker(
  options: { readonly log?: ProgressLog; readonly startTimeoutMs?: number } = {},
): Promise<EnsureMirrorResult> {
  const say: ProgressLog = (line) => (options.log ?? console.log)(`[kafka:mirror] ${line}`);
  const timeoutMs = options.startTimeoutMs ?? MIRROR_START_TIMEOUT_MS_DEFAULT;
  const layout = mirrorLayout();
  await Deno.mkdir(layout.dir, { recursive: true });
  // start:infra, journeys and tests may all call this at once; two JVMs would form one Connect group.
  const lock = {
    lockFile: layout.lockFile,
    what: "starting MirrorMaker",
    waitMs: timeoutMs + STALE_LOCK_MARGIN_MS,
    hint: `see ${repoRelative(layout.logFile)}`,
    say,
  };
  return await withStartLock(lock, () => ensureLocked(layout, timeoutMs, say));
}

async function ensureLocked(layout: MirrorLayout, timeoutMs: number, say: ProgressLog): Promise<EnsureMirrorResult> {
  const runningPid = await mirrorPid(layout);
  if (runningPid !== undefined) {
    if (await isReplicating(Date.now() - HEARTBEAT_FRESH_MS)) {
      say(`already replicating (pid ${runningPid}); nothing to do`);
      return { pid: runningPid, started: false };
    }
    say(`pid ${runningPid} is running but not replicating yet; waiting for it`);
    await waitUntilReplicating(layout, runningPid, Date.now() - HEARTBEAT_FRESH_MS, timeoutMs, say);
    return { pid: runningPid, started: false };
  }
  await requireBrokers();
  await checkPrerequisites(["java"]);
  // Before Connect looks at them: a storage topic some other client auto-created would stop it for good.
  for (const line of await ensureMirrorStorageTopics()) say(`storage topic ${line}`);
  await Deno.mkdir(LOGS_DIR, { recursive: true });
  await Deno.writeTextFile(layout.propertiesFile, mirrorMakerProperties());
  say(
    `starting MirrorMaker 2 (${mirrorFlows().map((f) => `${f.source}->${f.target}`).join(", ")}; ` +
      `log: ${repoRelative(layout.logFile)})`,
  );
  await Deno.writeTextFile(layout.logFile, `\n=== start ${new Date().toISOString()} ===\n`, { append: true });
  const startedMs = Date.now();
  const pid = spawnDetached(mirrorCommand(layout), layout.logFile, REPO_ROOT);
  await Deno.writeTextFile(layout.pidFile, `${pid}\n`);
  await waitUntilReplicating(layout, pid, startedMs, timeoutMs, say);
  return { pid, started: true };
}

function mirrorCommand(layout: MirrorLayout): string[] {
  return [
    "java",
    // Shares 2 cores with both brokers: a small heap, short GC pauses (they would show as mirroring lag).
    "-Xmx384m",
    "-Xms128m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
    `-Dlog4j2.configurationFile=${layout.log4jConfig}`,
    "-cp",
    `${KAFKA_LIBS_DIR}/*`,
    "org.apache.kafka.connect.mirror.MirrorMaker",
    layout.propertiesFile,
  ];
}

async function requireBrokers(): Promise<void> {
  for (const region of KAFKA_REGIONS) {
    const { port } = brokerLayout(region);
    if (!(await isKafkaUp(port))) {
      throw new Error(
        `MirrorMaker needs both brokers; Kafka ${region} does not answer on 127.0.0.1:${port}. Start them with ` +
          "`deno task infra:up`",
      );
    }
  }
}

async function waitUntilReplicating(
  layout: MirrorLayout,
  pid: number,
  sinceMs: number,
  timeoutMs: number,
  say: ProgressLog,
): Promise<void> {
  const startedMs = Date.now();
  let nextProgressMs = startedMs + PROGRESS_EVERY_MS;
  while (Date.now() - startedMs < timeoutMs) {
    if (!(await isProcessAlive(pid))) {
      throw new Error(
        `MirrorMaker (pid ${pid}) exited during startup; last lines of ${repoRelative(layout.logFile)}:\n` +
          (await tailFile(layout.logFile, 20)),
      );
    }
    if (await isReplicating(sinceMs)) {
      say(`replicating both ways (pid ${pid}) after ${seconds(Date.now() - startedMs)}`);
      return;
    }
    if (Date.now() >= nextProgressMs) {
      say(`waiting for mirrored heartbeats (${seconds(Date.now() - startedMs)} of ${seconds(timeoutMs)})`);
      nextProgressMs += PROGRESS_EVERY_MS;
    }
    await sleep(POLL_INTERVAL_MS);
  }
  throw new Error(
    `MirrorMaker (pid ${pid}) did not replicate heartbeats both ways within ${seconds(timeoutMs)}; see ` +
      repoRelative(layout.logFile),
  );
}

/**
 * True when every flow has delivered a heartbeat written at or after `sinceMs` into its target cluster. A
 * heartbeat is emitted into its source cluster each second and copied by the flow's source connector, so
 * its arrival proves the whole path: source consumer, task, producer into the target.
 */
export async function isReplicating(sinceMs: number): Promise<boolean> {
  for (const { source, target } of mirrorFlows()) {
    if (!(await hasRecordSince(target, remoteTopicOf(source, HEARTBEATS_TOPIC), sinceMs))) return false;
  }
  return true;
}

/** True when `topic` in `region` holds a record whose timestamp is at or after `sinceMs`. */
async function hasRecordSince(region: KafkaRegion, topic: string, sinceMs: number): Promise<boolean> {
  const kafka = new Kafka({
    clientId: "bv-mirror-probe",
    brokers: [`127.0.0.1:${brokerLayout(region).port}`],
    connectionTimeout: PROBE_TIMEOUT_MS,
    requestTimeout: PROBE_TIMEOUT_MS,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin({ retry: { retries: 0 } });
  try {
    await admin.connect();
    if (!(await admin.listTopics()).includes(topic)) return false;
    // Offset of the first record at or after the time; kafkajs answers the high watermark when there is none.
    const [since, high] = await Promise.all([
      admin.fetchTopicOffsetsByTimestamp(topic, sinceMs),
      admin.fetchTopicOffsets(topic),
    ]);
    return since.some(({ partition, offset }) =>
      Number(offset) < Number(high.find((p) => p.partition === partition)?.high ?? offset)
    );
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Stops the MirrorMaker this tooling started: SIGTERM (a clean stop commits offsets), SIGKILL after `graceMs`. */
export async function stopMirrorMaker(
  options: { readonly log?: ProgressLog; readonly graceMs?: number } = {},
): Promise<boolean> {
  const say: ProgressLog = (line) => (options.log ?? console.log)(`[kafka:mirror] ${line}`);
  const graceMs = options.graceMs ?? MIRROR_STOP_GRACE_MS_DEFAULT;
  const layout = mirrorLayout();
  const pid = await mirrorPid(layout);
  if (pid === undefined) {
    await Deno.remove(layout.pidFile).catch(ignoreNotFound);
    say("not running (no live pid); nothing to stop");
    return false;
  }
  say(`stopping pid ${pid} (SIGTERM; SIGKILL after ${seconds(graceMs)})`);
  await terminate(pid, {
    pidFile: layout.pidFile,
    mustContain: layout.propertiesFile,
    graceMs,
    pollIntervalMs: POLL_INTERVAL_MS,
    say,
  });
  return true;
}

/** The pid from the pid file when that process is alive and is this checkout's MirrorMaker. */
export function mirrorPid(layout: MirrorLayout = mirrorLayout()): Promise<number | undefined> {
  return livePid(layout.pidFile, layout.propertiesFile);
}

/** The main class every MirrorMaker 2 JVM runs; how a foreign one is recognised in `/proc/<pid>/cmdline`. */
const MIRROR_MAIN_CLASS = "org.apache.kafka.connect.mirror.MirrorMaker";

/**
 * Stops every MirrorMaker 2 JVM on this machine that another checkout of the project started (its command
 * line names a properties file other than ours): it would mirror between the brokers our tests now own and
 * join our MirrorMaker's Connect group. Resolves with how many were stopped.
 */
export async function stopForeignMirrorMakers(log: ProgressLog = console.log): Promise<number> {
  const ours = mirrorLayout().propertiesFile;
  let stopped = 0;
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let cmdline: string;
    try {
      cmdline = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).replaceAll("\0", " ");
    } catch {
      continue; // Gone meanwhile, or not ours to read.
    }
    if (!cmdline.includes(MIRROR_MAIN_CLASS) || cmdline.includes(ours)) continue;
    const pid = Number(entry.name);
    log(`[kafka:mirror] pid ${pid} is a MirrorMaker 2 of another checkout: stopping it`);
    await terminate(pid, {
      pidFile: `/proc/${pid}/__none__`, // Its pid file belongs to the other checkout; nothing of ours to remove.
      mustContain: MIRROR_MAIN_CLASS,
      graceMs: MIRROR_STOP_GRACE_MS_DEFAULT,
      pollIntervalMs: POLL_INTERVAL_MS,
      say: (line) => log(`[kafka:mirror] ${line}`),
    });
    stopped++;
  }
  return stopped;
}
