/**
 * @module
 * What MirrorMaker 2 replicates between the regional clusters and the `mm2.properties` it runs with. Every
 * setting that matters is written here with its reason, so the file `scripts/kafka/mirror.ts` writes on
 * each start is only an output. Private to `scripts/kafka/`; import `./mod.ts`.
 */
import { brokerLayout, KAFKA_REGIONS, type KafkaRegion, LOGS_DIR, REPO_ROOT } from "./_config.ts";

/**
 * Source topics mirrored in both directions (Java regexes, each matched against the whole topic name).
 * `(.*\.)?` admits a `BV_KAFKA_PREFIX` namespace (`t123.ecommerce.order.order.created.v1`); the `.v<n>` end
 * keeps dead-letter topics (`….v1.dlq`) regional. Chat and feed have no contracts yet; their patterns follow
 * seed 000 (`chat.message.sent.v1`, `social.feed.activity.v1`) and the five-segment rule alike.
 */
export const MIRRORED_TOPIC_PATTERNS: readonly string[] = Object.freeze([
  String.raw`(.*\.)?ecommerce\.order\.order\.[a-z_]+\.v[0-9]+`,
  String.raw`(.*\.)?chat\.message\.[a-z_.]+\.v[0-9]+`,
  String.raw`(.*\.)?social\.feed\.[a-z_.]+\.v[0-9]+`,
]);

/**
 * Consumer groups whose offsets MM2 checkpoints into the other region (whole-name Java regexes): the services'
 * own groups (`ecommerce-east.notifications.created`), never the prefixed ones of isolated test and bench
 * platforms (`bvbench_….ecommerce-east.…`). Each checkpoint round reads every matching group's offsets from
 * the source cluster, and every isolated run leaves its groups behind (~14 a bench run, hundreds a test
 * suite): with MM2's default `.*` those rounds were a steady cost to both brokers and MirrorMaker.
 */
export const CHECKPOINTED_GROUP_PATTERNS: readonly string[] = Object.freeze([
  String.raw`(ecommerce|chat|social)-(east|west)\..+`,
]);

/** How often MM2 lists source topics: a new matching topic starts mirroring within this (plus a task restart). */
export const REFRESH_TOPICS_INTERVAL_SECONDS = 5;
/** Heartbeats double as the readiness probe (`scripts/kafka/mirror.ts`), so they are frequent. */
export const EMIT_HEARTBEATS_INTERVAL_SECONDS = 1;
/** The heartbeats topic of DefaultReplicationPolicy; its remote copy is `<region>.heartbeats`. */
export const HEARTBEATS_TOPIC = "heartbeats";

/** True when `topic` is a source topic MM2 mirrors to the other region (same rule as the Java filter). */
export function isMirroredTopic(topic: string): boolean {
  if (KAFKA_REGIONS.some((region) => topic.startsWith(`${region}.`))) return false;
  return matchesWhole(MIRRORED_TOPIC_PATTERNS, topic);
}

/** True when MM2 checkpoints `groupId`'s offsets (same rule as its `groups` filter). */
export function isCheckpointedGroup(groupId: string): boolean {
  return matchesWhole(CHECKPOINTED_GROUP_PATTERNS, groupId);
}

/** True when one of `patterns` (Java regexes, as MM2 reads them) matches all of `name`, as Java's `matches()`. */
function matchesWhole(patterns: readonly string[], name: string): boolean {
  return patterns.some((pattern) => new RegExp(`^(?:${pattern})$`).test(name));
}

/** The name a topic of `sourceRegion` has in the other region's cluster (DefaultReplicationPolicy). */
export function remoteTopicOf(sourceRegion: KafkaRegion, topic: string): string {
  return `${sourceRegion}.${topic}`;
}

/** Where the MirrorMaker process keeps its files. */
export interface MirrorLayout {
  readonly dir: string;
  readonly propertiesFile: string;
  readonly pidFile: string;
  /** Held while one process starts MirrorMaker, so concurrent callers do not start two. */
  readonly lockFile: string;
  readonly logFile: string;
  readonly log4jConfig: string;
}

export function mirrorLayout(): MirrorLayout {
  const dir = `${REPO_ROOT}/.data/kafka/mirror`;
  return Object.freeze({
    dir,
    propertiesFile: `${dir}/mm2.properties`,
    pidFile: `${dir}/mirror.pid`,
    lockFile: `${dir}/start.lock`,
    logFile: `${LOGS_DIR}/kafka-mirror.log`,
    log4jConfig: `${REPO_ROOT}/infra/kafka/log4j2-mirror.properties`,
  });
}

/** The two directed flows, `east->west` and `west->east`. */
export function mirrorFlows(): { source: KafkaRegion; target: KafkaRegion }[] {
  return KAFKA_REGIONS.flatMap((source) =>
    KAFKA_REGIONS.filter((target) => target !== source).map((target) => ({ source, target }))
  );
}

/** MM2 dedicated-mode configuration: both regions, both directions, the selected topics only. */
export function mirrorMakerProperties(): string {
  const topics = MIRRORED_TOPIC_PATTERNS.join(", ");
  const lines = [
    `# Written by scripts/kafka/mirror.ts on every start; edit scripts/kafka/_mirror_config.ts instead.`,
    `clusters = ${KAFKA_REGIONS.join(", ")}`,
    // Connect otherwise scans all ~90 jars by reflection, once for MirrorMaker and once per flow: 30–50 s of
    // a start on 2 busy cores. Every plugin used here ships a ServiceLoader manifest (Connect's own check says so).
    `plugin.discovery = service_load`,
    ...KAFKA_REGIONS.flatMap((region) => clusterLines(region)),
    ...mirrorFlows().flatMap(({ source, target }) => [
      `${source}->${target}.enabled = true`,
      `${source}->${target}.topics = ${topics}`,
    ]),
    // Loop prevention: remote topics are renamed `<source>.<topic>`, and MM2 never copies a topic whose
    // source alias is the target (east.X in west is not sent back to east as west.east.X).
    `replication.policy.class = org.apache.kafka.connect.mirror.DefaultReplicationPolicy`,
    `replication.policy.separator = .`,
    // One broker per cluster: no topic can have more replicas than that.
    `replication.factor = 1`,
    `checkpoints.topic.replication.factor = 1`,
    `heartbeats.topic.replication.factor = 1`,
    `offset-syncs.topic.replication.factor = 1`,
    `offset.storage.replication.factor = 1`,
    `status.storage.replication.factor = 1`,
    `config.storage.replication.factor = 1`,
    `refresh.topics.interval.seconds = ${REFRESH_TOPICS_INTERVAL_SECONDS}`,
    `refresh.groups.interval.seconds = 30`,
    // Partition counts and non-default topic configs (retention, cleanup policy) follow the source topic.
    `sync.topic.configs.enabled = true`,
    `sync.topic.configs.interval.seconds = 30`,
    // The brokers run without an authorizer: describing ACLs would only fail and log every interval.
    `sync.topic.acls.enabled = false`,
    `emit.heartbeats.enabled = true`,
    `emit.heartbeats.interval.seconds = ${EMIT_HEARTBEATS_INTERVAL_SECONDS}`,
    // Checkpoints (consumer offsets translated into the other region) let a consumer group move regions
    // without replaying everything; offset syncs (kept on the source) are what they are computed from.
    `emit.checkpoints.enabled = true`,
    `groups = ${CHECKPOINTED_GROUP_PATTERNS.join(", ")}`,
    `emit.checkpoints.interval.seconds = 5`,
    `emit.offset-syncs.enabled = true`,
    `offset-syncs.topic.location = source`,
    // Regional consumer groups own their own offsets; writing translated offsets into them would fight the
    // live group. Translation stays available through the checkpoints (RemoteClusterUtils).
    `sync.group.offsets.enabled = false`,
  ];
  return lines.join("\n") + "\n";
}

/** Per-cluster client and worker settings; `<region>.producer.*` is the producer of flows into `region`. */
function clusterLines(region: KafkaRegion): string[] {
  const { port } = brokerLayout(region);
  return [
    `${region}.bootstrap.servers = 127.0.0.1:${port}`,
    // Each flow's worker takes its settings from its target cluster's entries, plugin discovery included.
    `${region}.plugin.discovery = service_load`,
    // Copies must survive a broker crash in the target and must not duplicate on producer retries.
    `${region}.producer.acks = all`,
    `${region}.producer.enable.idempotence = true`,
    // Kafka 4 producers wait 5 ms to fill a batch; cross-region visibility is what this process is for.
    `${region}.producer.linger.ms = 0`,
    // The source consumer: a record arriving ends a waiting fetch at once.
    `${region}.consumer.fetch.min.bytes = 1`,
    // A topic found after records were written to it is copied from its first record.
    `${region}.consumer.auto.offset.reset = earliest`,
    // Source offsets are committed this often: after a crash (not a clean stop) at most this much is copied
    // twice. A clean stop commits on the way out.
    `${region}.offset.flush.interval.ms = 2000`,
  ];
}
