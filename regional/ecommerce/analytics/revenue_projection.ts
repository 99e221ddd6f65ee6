/**
 * @module
 * The live revenue projection: a consumer of `order.paid` / `order.canceled` that folds each event into
 * per-minute windows (`revenue_minute`) by event time, so a late event updates the window it belongs to.
 * Each event is applied at most once: its `processed_events` marker and its effect share one transaction
 * (`processOnce`), and offsets are committed only after that transaction. Which topics it reads and whose
 * orders it counts follows the region's order-writer role (`revenue_sources.ts`): replicated, it also reads
 * the other regions' MirrorMaker copies and counts every order.
 */
import { log } from "../../../shared/observability/mod.ts";
import { type EventLog, retryLaterOnFailure, type Sql, type Subscription } from "../../../shared/ports/mod.ts";
import { processOnce } from "../outbox/mod.ts";
import type { WriterRoleReader } from "../orders/writer/mod.ts";
import { decodeRevenueRecord, REVENUE_TOPICS, type RevenueTopics } from "./revenue_events.ts";
import { revenueSourcesOf, revenueTopicSpecs } from "./revenue_sources.ts";
import { applyToRevenueTables } from "./revenue_store.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";

/** The consumer name of the live projection in `processed_events` (the replay counts its rows). */
export const REVENUE_CONSUMER = "analytics-revenue";

export interface RevenueProjectionDeps {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  /** This deployable's region; standalone, records mirrored in from another region are skipped. */
  readonly region: string;
  /** Every region of the platform; replicated, the others' MirrorMaker copies are read. @default `REGIONS` */
  readonly regions?: readonly string[];
  /** Read once at start: replicated (a role) or standalone. @default a reader of the `order_writer` row */
  readonly writerRole?: WriterRoleReader;
  /** Keep it stable so a restart resumes where it left off. @default `ecommerce-<region>.analytics-revenue` */
  readonly groupId?: string;
  /** The local topics; replicated, their copies from the other regions are read too. @default {@linkcode REVENUE_TOPICS} */
  readonly topics?: RevenueTopics;
  /** Where a new group starts; "earliest" builds the projection from the whole topic. @default "earliest" */
  readonly from?: "earliest" | "latest";
  /** Stamps `updated_at`. @default () => new Date() */
  readonly now?: () => Date;
}

/**
 * Starts the projection; resolves once subscribed (`ready` resolves when the member has joined). A record
 * that is not a valid paid/canceled event is retried by the event log, then dead-lettered to `<topic>.dlq`.
 */
export async function startRevenueProjection(deps: RevenueProjectionDeps): Promise<Subscription> {
  if (!deps.region) throw new TypeError("startRevenueProjection requires a region");
  const now = deps.now ?? (() => new Date());
  const { sql, region, regions, writerRole } = deps;
  const sources = await revenueSourcesOf({ sql, region, regions, writerRole, topics: deps.topics ?? REVENUE_TOPICS });
  log.info("revenue projection sources", { topics: sources.topics, everyOrigin: sources.everyOrigin });
  await deps.eventLog.ensureTopics(revenueTopicSpecs(sources));
  return await deps.eventLog.subscribe({
    groupId: deps.groupId ?? `ecommerce-${deps.region}.analytics-revenue`,
    topics: sources.topics,
    from: deps.from ?? "earliest",
    batchWindowMs: BACKGROUND_CONSUMER_WINDOW_MS,
    handler: async (record) => {
      const event = decodeRevenueRecord(record, sources);
      if (event === null) return;
      // A decoded event is valid: a database failure is waited out, never dead-lettered (revenue would miss it).
      await retryLaterOnFailure(
        "Applying a revenue event",
        () =>
          processOnce(deps.sql, REVENUE_CONSUMER, event.eventId, async (tx) => {
            await applyToRevenueTables(tx, event, now());
          }),
      );
    },
  });
}
