/**
 * @module
 * Where the local Kafka brokers live (ports, folders) and the KRaft `server.properties` each one runs with.
 * Private to `scripts/kafka/`; import `./mod.ts`.
 */
import { fileURLToPath } from "node:url";
import { type PortHolder, type PortVerdict, portVerdict } from "./_process.ts";

/** Pinned Kafka release; must match `<kafka.version>` in `infra/kafka/pom.xml`. */
export const KAFKA_VERSION = "4.1.1";

/** The regions that get a broker of their own. */
export const KAFKA_REGIONS = ["east", "west"] as const;
export type KafkaRegion = typeof KAFKA_REGIONS[number];

/**
 * The checkout two folders above `moduleUrl` (a `file:` URL), as a file system path. `fileURLToPath`, not
 * `URL.pathname`: the latter keeps percent-encoding, so a checkout in `my proj` became `my%20proj`.
 */
export function repoRootOf(moduleUrl: string | URL): string {
  return fileURLToPath(new URL("../../", moduleUrl)).replace(/\/$/, "");
}

/** The repository root, found from this file so the scripts work from any working directory. */
export const REPO_ROOT = repoRootOf(import.meta.url);

/** `path` relative to the repository root when it lies inside it, for log lines. */
export function repoRelative(path: string): string {
  return path.startsWith(`${REPO_ROOT}/`) ? path.slice(REPO_ROOT.length + 1) : path;
}

export const KAFKA_POM = `${REPO_ROOT}/infra/kafka/pom.xml`;
export const KAFKA_LOG4J_CONFIG = `${REPO_ROOT}/infra/kafka/log4j2.properties`;
/** Git-ignored; the jars (~90 files, ~80 MB) are downloaded once per Kafka version. */
export const KAFKA_LIBS_DIR = `${REPO_ROOT}/.cache/kafka/${KAFKA_VERSION}/libs`;
/** Written after a complete download; its absence means the folder may be partial. */
export const KAFKA_LIBS_MARKER = `${REPO_ROOT}/.cache/kafka/${KAFKA_VERSION}/.complete`;
/** Held while one process downloads the jars, so two never empty and fill the same folder at once. */
export const KAFKA_LIBS_LOCK = `${REPO_ROOT}/.cache/kafka/${KAFKA_VERSION}/download.lock`;
export const LOGS_DIR = `${REPO_ROOT}/.data/logs`;

const DEFAULT_PORTS: Readonly<Record<KafkaRegion, number>> = { east: 9092, west: 9192 };

/** Everything that differs between two regional brokers. */
export interface BrokerLayout {
  readonly region: KafkaRegion;
  /** PLAINTEXT listener for clients. */
  readonly port: number;
  /** KRaft controller listener; always `port + 1`. */
  readonly controllerPort: number;
  readonly dir: string;
  readonly dataDir: string;
  readonly propertiesFile: string;
  readonly pidFile: string;
  /** Held while one process starts this broker (see `withStartLock`). */
  readonly lockFile: string;
  readonly logFile: string;
}

/** The layout of `region`; the client port comes from `KAFKA_<REGION>_PORT` when set. */
export function brokerLayout(region: KafkaRegion): BrokerLayout {
  const port = portFromEnv(`KAFKA_${region.toUpperCase()}_PORT`, DEFAULT_PORTS[region]);
  const dir = `${REPO_ROOT}/.data/kafka/${region}`;
  return Object.freeze({
    region,
    port,
    controllerPort: port + 1,
    dir,
    dataDir: `${dir}/data`,
    propertiesFile: `${dir}/server.properties`,
    pidFile: `${dir}/kafka.pid`,
    lockFile: `${dir}/start.lock`,
    logFile: `${LOGS_DIR}/kafka-${region}.log`,
  });
}

function portFromEnv(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65534) {
    throw new RangeError(`${name} must be a TCP port between 1 and 65534, got "${raw}"`);
  }
  return port;
}

/**
 * True when `argv` (a process's command line, `/proc/<pid>/cmdline` split at NUL) is this checkout's broker of
 * `layout`: the `kafka.Kafka` main class run with this region's `server.properties`. Whole arguments are
 * compared, so another checkout whose path merely ends the same way is not mistaken for ours.
 */
export function isBrokerOf(layout: BrokerLayout, argv: readonly string[]): boolean {
  return argv.includes("kafka.Kafka") && argv.includes(layout.propertiesFile);
}

/**
 * Whether `argv` is a broker another checkout of this project started (`kafka.Kafka` with a
 * `.data/kafka/<region>/server.properties` of its own): what `./bv test` replaces so its tests own their broker.
 */
export function isSiblingBroker(layout: BrokerLayout, argv: readonly string[]): boolean {
  const properties = new RegExp(`/\\.data/kafka/${layout.region}/server\\.properties$`);
  return argv.includes("kafka.Kafka") && !isBrokerOf(layout, argv) && argv.some((arg) => properties.test(arg));
}

/**
 * Whether the process on `port` (the broker's client or controller port) is this checkout's `layout` broker,
 * the only process the tooling may signal there; otherwise the one line to stop with. Pure.
 */
export function brokerPortVerdict(layout: BrokerLayout, port: number, holder: PortHolder | undefined): PortVerdict {
  return portVerdict(port, holder, {
    expected: `this checkout's Kafka ${layout.region} broker`,
    portVariable: `KAFKA_${layout.region.toUpperCase()}_PORT`,
    isOurs: (argv) => isBrokerOf(layout, argv),
  });
}

/** A single-node KRaft cluster (broker and controller in one JVM) sized for a laptop and for tests. */
export function serverProperties(layout: BrokerLayout): string {
  const lines = [
    `# Written by scripts/kafka on every start; edit scripts/kafka/_config.ts instead.`,
    `process.roles=broker,controller`,
    `node.id=1`,
    // A static single-voter quorum: the voter's address lives here, not in the formatted metadata, so a
    // port override (KAFKA_<REGION>_PORT) keeps working on existing data. (`--standalone` would record it.)
    `controller.quorum.voters=1@127.0.0.1:${layout.controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${layout.port},CONTROLLER://127.0.0.1:${layout.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${layout.port},CONTROLLER://127.0.0.1:${layout.controllerPort}`,
    `listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT`,
    `controller.listener.names=CONTROLLER`,
    `inter.broker.listener.name=PLAINTEXT`,
    `log.dirs=${layout.dataDir}`,
    `num.partitions=3`,
    `auto.create.topics.enable=true`,
    `delete.topic.enable=true`,
    // One broker: internal topics cannot have more replicas than that.
    `offsets.topic.replication.factor=1`,
    `offsets.topic.num.partitions=3`,
    `transaction.state.log.replication.factor=1`,
    `transaction.state.log.min.isr=1`,
    `share.coordinator.state.topic.replication.factor=1`,
    `share.coordinator.state.topic.min.isr=1`,
    // Tests join groups constantly; the default 3 s delay would add 3 s to each of them.
    `group.initial.rebalance.delay.ms=0`,
    // Tests use short session timeouts; the broker's floor must allow them.
    `group.min.session.timeout.ms=1000`,
    `num.network.threads=2`,
    `num.io.threads=4`,
    // Small segments and a short retention keep .data/kafka small on a dev machine.
    `log.segment.bytes=16777216`,
    `log.retention.hours=24`,
    `log.retention.check.interval.ms=60000`,
    // The log cleaner's dedupe map is one heap array of this size (default 128 MiB: a quarter of the 512 MiB
    // heap, which kept G1's young generation at ~15 MB and collecting every ~2 s). 16 MiB maps ~700,000 keys
    // per cleaning pass, far more than the compacted topics here hold (consumer offsets, MirrorMaker state).
    `log.cleaner.dedupe.buffer.size=16777216`,
  ];
  return lines.join("\n") + "\n";
}
