/**
 * @module
 * Which topics a region's revenue projection reads and whose orders it counts, decided once at start from
 * the region's order-writer role and shared by the live projection and the replay, so both read alike.
 *
 * Standalone (no `order_writer` row: the embedded default) a region's orders tables hold the orders it
 * wrote itself: it reads its own topics and skips what the embedded mirror copied in (`bv-origin-region`).
 * Replicated (a row, writer or replica: `start:infra`) its orders tables are copies of the writer's, and
 * the writer publishes order events only into its own Kafka; MirrorMaker 2 copies them into the other
 * clusters as `<source region>.<topic>`. So the region reads its local topics and every other region's
 * copies, and counts every order event whatever its origin: before a promotion the orders came from
 * the old writer, after it from the new one. A copy seen twice is dropped by `processOnce`'s eventId marker
 * (MirrorMaker keeps the record), and the per-order state takes a paid and a cancel from either region.
 */
import { REGIONS } from "../../../shared/config/config.ts";
import type { Sql, TopicSpec } from "../../../shared/ports/mod.ts";
import { remoteTopic } from "../../../shared/replication/remote_topic.ts";
import { createWriterRoleReader, type WriterRoleReader } from "../orders/writer/mod.ts";
import { REVENUE_TOPICS, type RevenueScope, type RevenueTopics } from "./revenue_events.ts";

/** Partitions of the topics the projection makes: the order topics' count, so a mirrored copy matches. */
export const REVENUE_TOPIC_PARTITIONS = 3;

export interface RevenueSourcesOptions {
  readonly sql: Sql;
  /** This deployable's region. */
  readonly region: string;
  /** The local topics. @default {@linkcode REVENUE_TOPICS} */
  readonly topics?: RevenueTopics;
  /** Every region of the platform; replicated, the others' copies are read. @default the config's `REGIONS` */
  readonly regions?: readonly string[];
  /**
   * The region's order-writer role. @default a reader of the `order_writer` row; a database the order-writer
   * migration never ran in (the analytics context alone) cannot be linked, so it is standalone
   */
  readonly writerRole?: WriterRoleReader;
}

/** What to subscribe to, and whose orders count. */
export interface RevenueSources extends RevenueScope {
  /** Logical topic names: the local paid and canceled topics, then (replicated) each other region's copies. */
  readonly topics: readonly string[];
}

/**
 * Reads the role once. A region linked or unlinked while its projection runs keeps its old sources until
 * the process restarts; `start:infra` and the DR drill link a region before its services start, and a
 * promotion keeps both regions replicated.
 */
export async function revenueSourcesOf(options: RevenueSourcesOptions): Promise<RevenueSources> {
  const { region } = options;
  const topics = options.topics ?? REVENUE_TOPICS;
  const local = [topics.paid, topics.canceled];
  if (!(await holdsReplicatedOrders(options.sql, options.writerRole))) {
    return Object.freeze({ region, everyOrigin: false, topics: Object.freeze(local) });
  }
  const others = (options.regions ?? REGIONS).filter((other) => other !== region);
  const copies = others.flatMap((other) => local.map((topic) => remoteTopic(other, topic)));
  return Object.freeze({ region, everyOrigin: true, topics: Object.freeze([...local, ...copies]) });
}

/**
 * The topics to ensure before subscribing: a subscription to a missing topic fails on Kafka (consumers do
 * not auto-create), and a copy exists only once the other region published. MirrorMaker 2 uses a copy that
 * already exists (it only adds partitions when the source has more).
 */
export function revenueTopicSpecs(sources: RevenueSources): TopicSpec[] {
  return sources.topics.map((name) => ({ name, partitions: REVENUE_TOPIC_PARTITIONS }));
}

async function holdsReplicatedOrders(sql: Sql, writerRole: WriterRoleReader | undefined): Promise<boolean> {
  if (writerRole === undefined) {
    const [{ present }] = await sql.query<{ present: boolean }>`
      select to_regclass('order_writer') is not null as present`;
    if (!present) return false;
  }
  return (await (writerRole ?? createWriterRoleReader(sql)).current()) !== undefined;
}
