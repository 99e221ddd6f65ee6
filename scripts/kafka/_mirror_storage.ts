/**
 * @module
 * MirrorMaker 2's Connect storage topics, made (or mended) before MirrorMaker starts. Connect refuses to start
 * a flow whose offsets, configs or status topic is not compacted, and its configs topic must have exactly one
 * partition. The brokers create topics on first use (`auto.create.topics.enable=true`, with the `delete`
 * policy and 3 partitions), so any client that touches such a name first — a MirrorMaker of a deleted
 * checkout still pointed at these ports did, once — leaves a topic Connect will never accept; only a purge
 * of the broker's data used to clear it. Private to `scripts/kafka/`.
 */
import { type Admin, ConfigResourceTypes, Kafka, logLevel } from "kafkajs";
// Before any client exists: stops kafkajs's 1 ms idle timer loop per broker connection.
import "../../shared/adapters/kafka/_request_queue_fix.ts";
import { brokerLayout, type KafkaRegion } from "./_config.ts";
import { mirrorFlows } from "./_mirror_config.ts";

/** A compacted topic Connect keeps state in. */
export interface StorageTopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** The partition count is a requirement (Connect's configs topic), not only what a new topic gets. */
  readonly exactPartitions: boolean;
}

/** Connect's defaults (`offset.storage.partitions`, `status.storage.partitions`), which mm2.properties keeps. */
const OFFSETS_PARTITIONS = 25;
const STATUS_PARTITIONS = 5;
const ADMIN_TIMEOUT_MS = 10_000;
/** A deleted topic lingers a moment; its re-creation is retried this long. */
const RECREATE_TIMEOUT_MS = 15_000;

/**
 * The storage topics of every flow, per cluster. A flow `source->target` keeps its Connect offsets, configs
 * and status in the target cluster under the source's alias (`mm2-offsets.<source>.internal`), and its
 * offset syncs in the source cluster (`offset-syncs.topic.location = source`) under the target's.
 */
export function mirrorStorageTopics(): { readonly region: KafkaRegion; readonly topics: StorageTopicSpec[] }[] {
  const byRegion = new Map<KafkaRegion, StorageTopicSpec[]>();
  const add = (region: KafkaRegion, spec: StorageTopicSpec) =>
    byRegion.set(region, [...byRegion.get(region) ?? [], spec]);
  for (const { source, target } of mirrorFlows()) {
    add(target, { name: `mm2-offsets.${source}.internal`, partitions: OFFSETS_PARTITIONS, exactPartitions: false });
    add(target, { name: `mm2-configs.${source}.internal`, partitions: 1, exactPartitions: true });
    add(target, { name: `mm2-status.${source}.internal`, partitions: STATUS_PARTITIONS, exactPartitions: false });
    add(source, { name: `mm2-offset-syncs.${target}.internal`, partitions: 1, exactPartitions: true });
  }
  return [...byRegion].map(([region, topics]) => ({ region, topics }));
}

/** Makes or mends the storage topics in both clusters; returns one line per topic it changed. */
export async function ensureMirrorStorageTopics(): Promise<string[]> {
  const changed: string[] = [];
  for (const { region, topics } of mirrorStorageTopics()) {
    const admin = new Kafka({
      clientId: "bv-mirror-storage",
      brokers: [`127.0.0.1:${brokerLayout(region).port}`],
      connectionTimeout: 3_000,
      requestTimeout: ADMIN_TIMEOUT_MS,
      retry: { initialRetryTime: 200, retries: 3 },
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      changed.push(...(await ensureCompactedTopics(admin, topics)).map((line) => `${region}: ${line}`));
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }
  return changed;
}

/**
 * Creates each missing topic compacted; sets `cleanup.policy=compact` on one that is not; deletes and creates
 * again one whose partition count is a requirement and is wrong (only while nothing uses it: MirrorMaker is
 * not running, and it writes its connector configs anew on every start). Returns what it did, a line each.
 */
export async function ensureCompactedTopics(admin: Admin, specs: readonly StorageTopicSpec[]): Promise<string[]> {
  const changed: string[] = [];
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((spec) => !existing.has(spec.name));
  const present = specs.filter((spec) => existing.has(spec.name));
  if (present.length > 0) {
    const { topics } = await admin.fetchTopicMetadata({ topics: present.map((spec) => spec.name) });
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: present.map((spec) => ({
        type: ConfigResourceTypes.TOPIC,
        name: spec.name,
        configNames: ["cleanup.policy"],
      })),
    });
    for (const spec of present) {
      const partitions = topics.find((topic) => topic.name === spec.name)?.partitions.length;
      const policy = resources.find((resource) => resource.resourceName === spec.name)?.configEntries
        .find((entry) => entry.configName === "cleanup.policy")?.configValue;
      if (spec.exactPartitions && partitions !== spec.partitions) {
        await admin.deleteTopics({ topics: [spec.name], timeout: ADMIN_TIMEOUT_MS });
        await untilGone(admin, spec.name);
        await createCompacted(admin, spec);
        changed.push(`${spec.name} had ${partitions} partitions (${policy}); made again with ${spec.partitions}`);
      } else if (policy !== "compact") {
        await admin.alterConfigs({
          validateOnly: false,
          resources: [{
            type: ConfigResourceTypes.TOPIC,
            name: spec.name,
            configEntries: [{ name: "cleanup.policy", value: "compact" }],
          }],
        });
        changed.push(`${spec.name} had cleanup.policy=${policy}; set to compact`);
      }
    }
  }
  for (const spec of missing) {
    await createCompacted(admin, spec);
    changed.push(`${spec.name} created (compact)`);
  }
  return changed;
}

/** Waits until a deleted topic no longer shows in the listing (deletion finishes in the background). */
async function untilGone(admin: Admin, name: string): Promise<void> {
  const startedMs = Date.now();
  while ((await admin.listTopics()).includes(name)) {
    if (Date.now() - startedMs > RECREATE_TIMEOUT_MS) {
      throw new Error(`Topic "${name}" was still being deleted after ${RECREATE_TIMEOUT_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Creates `spec` compacted, retrying while the broker still refuses the name (a deletion finishing). */
async function createCompacted(admin: Admin, spec: StorageTopicSpec): Promise<void> {
  const startedMs = Date.now();
  for (;;) {
    try {
      await admin.createTopics({
        waitForLeaders: true,
        timeout: ADMIN_TIMEOUT_MS,
        topics: [{
          topic: spec.name,
          numPartitions: spec.partitions,
          replicationFactor: 1,
          configEntries: [{ name: "cleanup.policy", value: "compact" }],
        }],
      });
      return;
    } catch (error) {
      if (Date.now() - startedMs > RECREATE_TIMEOUT_MS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
}
