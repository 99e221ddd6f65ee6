/**
 * @module
 * The consumer of flash sale events (one consumer group per region). On `started` it sets
 * `flash_price:{productId}` with a TTL equal to the time left, which makes the cache the price authority:
 * the price disappears at `endsAt` even if nothing else happens. On `ended` it deletes the key if it still
 * belongs to that sale. Either way it numbers the event in the broadcast log (once per eventId) and
 * publishes it on the region's pub/sub channel, where every SSE hub of the region picks it up. A price the cache
 * loses later (the started event is committed by then) is put back by `flash_price_reconciler.ts`.
 */
import { parseEnvelope } from "../../../shared/contracts/envelope.ts";
import { flashSaleStarted } from "../../../shared/contracts/events/ecommerce.ts";
import { flashSaleEnded } from "../../../shared/contracts/events/pricing.ts";
import { log } from "../../../shared/observability/mod.ts";
import {
  type Cache,
  type EventLog,
  retryLaterOnFailure,
  type Sql,
  type Subscription,
} from "../../../shared/ports/mod.ts";
import { type FlashSaleEventName, recordBroadcast } from "./broadcast_log.ts";

/** `flash_price:{productId}` (seed 003 section 7): the live sale, JSON, expiring at its end. */
export function flashPriceKey(productId: string): string {
  return `flash_price:${productId.toLowerCase()}`;
}

/** What `flash_price:{productId}` holds. */
export interface FlashPrice {
  readonly saleId: string;
  readonly productId: string;
  readonly price: string;
  readonly currency: string;
  readonly endsAt: string;
}

export interface FlashPriceProjectionOptions {
  readonly sql: Sql;
  readonly cache: Cache;
  readonly eventLog: EventLog;
  readonly groupId: string;
  /** The region's pub/sub channel the SSE hubs listen on. */
  readonly channel: string;
  /** Broadcasts kept in the log for resume and catch-up. */
  readonly broadcastsRetained: number;
  /** @default Date.now */
  readonly now?: () => number;
}

/**
 * Consumes started and ended events. A new group starts at "latest": the caller awaits `ready` before it
 * accepts requests, so no sale can start unseen, and a fresh region does not replay other runs' history.
 * A record that is not a valid envelope of these types throws, so it ends on `<topic>.dlq`.
 */
export async function startFlashPriceProjection(options: FlashPriceProjectionOptions): Promise<Subscription> {
  const { cache, sql } = options;
  const now = options.now ?? Date.now;

  async function broadcast(eventId: string, event: FlashSaleEventName, data: Record<string, unknown>) {
    const stored = await recordBroadcast(sql, { eventId, event, data }, options.broadcastsRetained);
    if (!stored) return;
    // After the commit: a failed publish is not retried here (the event is recorded); the hubs' periodic
    // catch-up from the log delivers it instead.
    await cache.publish(options.channel, JSON.stringify(stored)).catch((error) =>
      log.warn("flash sale broadcast publish failed; hubs will catch up from the log", { error: String(error) })
    );
  }

  return await options.eventLog.subscribe({
    groupId: options.groupId,
    topics: [flashSaleStarted.eventType, flashSaleEnded.eventType],
    from: "latest",
    handler: async (record) => {
      const parsed = parseEnvelope(record.value);
      if (!parsed.ok) throw new TypeError(`Cannot project a flash sale event: ${parsed.reason}`);
      const { envelope } = parsed;
      if (envelope.eventType !== flashSaleStarted.eventType && envelope.eventType !== flashSaleEnded.eventType) {
        throw new TypeError(`Cannot project event type "${envelope.eventType}" as a flash sale event`);
      }
      // A valid event: a Redis or database failure is waited out, never dead-lettered (a sale's start or end
      // would never be priced or broadcast).
      await retryLaterOnFailure("Projecting a flash sale event", async () => {
        if (envelope.eventType === flashSaleStarted.eventType) {
          const sale = envelope.payload as FlashPrice;
          const ttlMs = Math.ceil(Date.parse(sale.endsAt) - now());
          // A start read after its end (a lagging consumer) sets nothing and announces nothing: the sale is over.
          // Starts and ends travel on two topics, so its end may have been broadcast already, and a late "started"
          // would be every client's last word on a sale that no longer runs.
          if (ttlMs <= 0) {
            log.info("a flash sale start was read after the sale ended; not priced, not broadcast", {
              saleId: sale.saleId,
              productId: sale.productId,
            });
            return;
          }
          await cache.set(flashPriceKey(sale.productId), JSON.stringify(sale), { ttlMs });
          await broadcast(envelope.eventId, "flash_sale.started", { ...sale });
        } else {
          const ended = envelope.payload as { saleId: string; productId: string; endedAt: string };
          const key = flashPriceKey(ended.productId);
          // Only this sale's price goes: a later sale of the product owns the key by then.
          if (saleIdOf(await cache.get(key)) === ended.saleId) await cache.del(key);
          await broadcast(envelope.eventId, "flash_sale.ended", { ...ended });
        }
      });
    },
  });
}

/** The sale a `flash_price:{productId}` value belongs to; undefined for a missing or corrupt one. */
export function saleIdOf(text: string | null): string | undefined {
  if (text === null) return undefined;
  try {
    return (JSON.parse(text) as Partial<FlashPrice>).saleId;
  } catch {
    return undefined;
  }
}
