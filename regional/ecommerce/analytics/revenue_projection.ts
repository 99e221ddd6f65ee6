/**
 * @module
 * The live revenue projection: a consumer of `order.paid` / `order.canceled` that folds each event into
 * per-minute windows (`revenue_minute`) by event time, so a late event updates the window it belongs to.
 * Each event is applied at most once: its `processed_events` marker and its effect share one transaction
 * (`processOnce`), and offsets are committed only after that transaction.
 */
import { type EventLog, retryLaterOnFailure, type Sql, type Subscription } from "../../../shared/ports/mod.ts";
import { processOnce } from "../outbox/mod.ts";
import { decodeRevenueRecord, REVENUE_TOPICS, type RevenueTopics } from "./revenue_events.ts";
import { applyToRevenueTables } from "./revenue_store.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";

/** The consumer name of the live projection in `processed_events` (the replay counts its rows). */
export const REVENUE_CONSUMER = "analytics-revenue";

export interface RevenueProjectionDeps {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  /** This deployable's region; records mirrored in from another region are skipped. */
  readonly region: string;
  /** Keep it stable so a restart resumes where it left off. @default `ecommerce-<region>.analytics-revenue` */
  readonly groupId?: string;
  /** @default {@linkcode REVENUE_TOPICS} */
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
  const topics = deps.topics ?? REVENUE_TOPICS;
  const now = deps.now ?? (() => new Date());
  await deps.eventLog.ensureTopics([{ name: topics.paid, partitions: 3 }, { name: topics.canceled, partitions: 3 }]);
  return await deps.eventLog.subscribe({
    groupId: deps.groupId ?? `ecommerce-${deps.region}.analytics-revenue`,
    topics: [topics.paid, topics.canceled],
    from: deps.from ?? "earliest",
    batchWindowMs: BACKGROUND_CONSUMER_WINDOW_MS,
    handler: async (record) => {
      const event = decodeRevenueRecord(record, deps.region);
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
