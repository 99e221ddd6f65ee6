/**
 * @module
 * The `inventory:{productId}` cache (seed 003 section 7, "event-driven set"): a JSON snapshot of a
 * product's stock, set only from `ecommerce.inventory.stock.adjusted.v1` events, never by a request
 * handler. Setting a key is naturally idempotent, and a product's events share a partition (key =
 * productId), so a redelivery replays them in order and the last one wins again.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import {
  type Cache,
  type EventLog,
  type IncomingRecord,
  retryLaterOnFailure,
  type Subscription,
} from "../../../shared/ports/mod.ts";
import { type StockView, stockView } from "./stock.ts";
import { BACKGROUND_CONSUMER_WINDOW_MS } from "../consumer_windows.ts";

/** The cache key of a product's stock snapshot. */
export function inventoryCacheKey(productId: string): string {
  return `inventory:${productId}`;
}

/** What `inventory:{productId}` holds: the stock view plus the event it came from. */
export interface InventorySnapshot extends StockView {
  readonly eventId: string;
  readonly occurredAt: string;
}

export interface InventoryCacheProjectionOptions {
  readonly eventLog: EventLog;
  readonly cache: Cache;
  /** The consumer group; keep it stable so a restart resumes where it left off. */
  readonly groupId: string;
  /** Where a new group starts: "earliest" rebuilds every snapshot from the topic. @default "earliest" */
  readonly from?: "earliest" | "latest";
}

/**
 * Subscribes to stock.adjusted and keeps `inventory:{productId}` current; `ready` resolves once joined.
 * Where the event log takes batches (Kafka), a batch costs one offset commit and one write per product it
 * names (the last snapshot of each wins) instead of a commit and a write per event: every reservation
 * announces its stock, so under load these events outnumber orders. A record that is not a valid
 * stock.adjusted event is poison either way: it ends on the dead-letter topic after the retries (in batch
 * mode with the rest of its batch, whose snapshots were applied all the same).
 */
export function startInventoryCacheProjection(options: InventoryCacheProjectionOptions): Promise<Subscription> {
  const { cache, eventLog } = options;
  const group = {
    groupId: options.groupId,
    topics: [stockAdjusted.eventType],
    from: options.from ?? "earliest",
    batchWindowMs: BACKGROUND_CONSUMER_WINDOW_MS,
  } as const;
  // A snapshot was decoded, so a failed write is Redis's: waited out, never dead-lettered.
  const write = (snapshot: InventorySnapshot) =>
    retryLaterOnFailure(
      "Writing an inventory snapshot",
      () => cache.set(inventoryCacheKey(snapshot.productId), JSON.stringify(snapshot)),
    );
  if (eventLog.subscribeBatches) {
    return eventLog.subscribeBatches({
      ...group,
      handler: async (records) => {
        // One partition, in offset order: a later event of a product replaces an earlier one.
        const latest = new Map<string, InventorySnapshot>();
        let poison: unknown;
        for (const record of records) {
          try {
            const snapshot = snapshotOf(record);
            latest.set(snapshot.productId, snapshot);
          } catch (error) {
            poison ??= error;
          }
        }
        await Promise.all([...latest.values()].map(write));
        if (poison !== undefined) throw poison;
      },
    });
  }
  return eventLog.subscribe({ ...group, handler: (record) => write(snapshotOf(record)) });
}

/** The snapshot a stock.adjusted record carries; throws on anything else (poison, for the DLQ). */
function snapshotOf(record: IncomingRecord): InventorySnapshot {
  const parsed = parseEnvelope(record.value);
  if (!parsed.ok) throw new TypeError(`Not a valid stock.adjusted event: ${parsed.reason}`);
  if (parsed.envelope.eventType !== stockAdjusted.eventType) {
    throw new TypeError(`Expected "${stockAdjusted.eventType}" but got "${parsed.envelope.eventType}"`);
  }
  const payload = stockAdjusted.payload.parse(parsed.envelope.payload);
  return { ...stockView(payload), eventId: parsed.envelope.eventId, occurredAt: parsed.envelope.occurredAt };
}
