/**
 * @module
 * Puts running sales' prices back into the cache. The projection sets `flash_price:{productId}` once, from the
 * `started` event; if the cache later loses the key (an embedded process restarts with an empty in-memory cache,
 * the in-memory cache evicts it past its size bound, Redis restarts without persistence) the event was committed
 * long ago and nothing would set it again: the price would answer 404, while `flash_sales` still shows the sale
 * running, until its end. This loop re-reads the running sales from `flash_sales` (the record of what was
 * started) when the projection starts and then periodically, and writes a missing key the way the projection
 * does, with the time left as its TTL.
 */
import client from "prom-client";
import { log, metrics } from "../../../shared/observability/mod.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { withTimeout } from "../../../shared/runtime/mod.ts";
import { type FlashPrice, flashPriceKey, saleIdOf } from "./flash_price_projection.ts";
import { wakeableSleep } from "../../../shared/runtime/wakeable_sleep.ts";

export interface FlashPriceReconcilerOptions {
  readonly sql: Sql;
  readonly cache: Cache;
  /** Time between passes: the longest a lost price stays lost. @default 15000 */
  readonly intervalMs?: number;
  /** Running sales looked at per pass; more are worked off in the next passes. @default 1000 */
  readonly salesPerPassMax?: number;
  /** Running sales read per query, which is also the number of cache calls in flight. @default 100 */
  readonly pageSize?: number;
  /** Bound on each query and cache call, so a hung dependency cannot hold a pass (or startup) up. @default 2000 */
  readonly callTimeoutMs?: number;
  /** The clock, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
}

export interface FlashPriceReconciler {
  /** Settles when the first pass (started at once) has finished or failed; never rejects. */
  readonly firstPass: Promise<void>;
  /** Stops after the pass in flight. */
  stop(): Promise<void>;
}

/** Where a pass bounded by `salesPerPassMax` stopped; the next pass goes on from there. */
export interface RunningSaleCursor {
  readonly endsAt: Date;
  readonly saleId: string;
}

/** What one pass did. */
export interface ReconcilePass {
  /** Running sales whose key was looked at. */
  readonly checked: number;
  /** Keys written back. */
  readonly restored: number;
  /** Restored keys deleted again because the sale ended while the pass wrote them. */
  readonly takenBack: number;
  /** Set when the pass stopped at `salesPerPassMax` with sales left to look at. */
  readonly next?: RunningSaleCursor;
}

const RESTORED_METRIC = "bv_flash_prices_restored_total";

/** Prices the cache had lost and the reconciler wrote back: each one is a gap the projection alone left open. */
const pricesRestored = (metrics.registry.getSingleMetric(RESTORED_METRIC) as client.Counter | undefined) ??
  new client.Counter({
    name: RESTORED_METRIC,
    help: "Flash sale prices written back to the cache after it lost them",
    registers: [metrics.registry],
  });

const NIL_UUID = "00000000-0000-0000-0000-000000000000";

interface RunningSaleRow extends Record<string, unknown> {
  sale_id: string;
  product_id: string;
  price: string;
  currency: string;
  ends_at: Date;
}

/**
 * One pass: for each running sale (not ended, `ends_at` after now), in `ends_at` order after `after`, writes
 * `flash_price:{productId}` when the key is missing. Races, and why they are safe:
 *
 * - A key that holds anything is left alone: it is the projection's value, a newer sale's, or an ADMIN's
 *   (the cache is the authority). A newer sale of the product can only start once this one's `ends_at` has
 *   passed, and a restore is only written before then.
 * - The TTL is `ends_at - now`, taken just before the write, and a sale at or past its end is skipped: a
 *   restored price expires at the sale's end exactly like the projection's, so it never outlives the sale.
 * - The sweeper may end a sale between the read and the write (possible before `ends_at` on this clock only
 *   when the sweeper's clock runs ahead). Restored sales are therefore read again after the write; one that
 *   ended meanwhile has its key deleted if it still holds that sale. If the sweeper commits after that read,
 *   its ended event is projected after our write and deletes the key itself. Either way the end wins. (A write
 *   that timed out here but reaches Redis later, from ioredis's offline queue, is not read again: its TTL was
 *   taken before the delay, so it outlives the end by at most that delay, as a projection's write can too.)
 * - Two processes of the region, or a pass and a lagging projection of the started event, may write the same key
 *   at once: both write the same sale with the same end, so either write may win.
 */
export async function reconcileFlashPrices(
  options: FlashPriceReconcilerOptions,
  after?: RunningSaleCursor,
): Promise<ReconcilePass> {
  const { sql, cache } = options;
  const now = options.now ?? Date.now;
  const { salesPerPassMax, pageSize, callTimeoutMs } = boundsOf(options);
  const bounded = <T>(promise: Promise<T>, what: string) => withTimeout(promise, callTimeoutMs, what);
  let cursor = after;
  let checked = 0;
  let restored = 0;
  let takenBack = 0;
  while (checked < salesPerPassMax) {
    const limit = Math.min(pageSize, salesPerPassMax - checked);
    const rows = await bounded(
      sql.query<RunningSaleRow>`
        select sale_id::text as sale_id, product_id::text as product_id, price::text as price, currency, ends_at
        from flash_sales
        where ended_at is null and ends_at > ${new Date(now())}
          and (ends_at, sale_id) > (${cursor?.endsAt ?? new Date(0)}::timestamptz, ${cursor?.saleId ?? NIL_UUID}::uuid)
        order by ends_at, sale_id limit ${limit}`,
      "Reading running flash sales",
    );
    checked += rows.length;
    if (rows.length === 0) return { checked, restored, takenBack };
    cursor = { endsAt: rows[rows.length - 1].ends_at, saleId: rows[rows.length - 1].sale_id };

    const outcomes = await Promise.allSettled(rows.map(async (row): Promise<FlashPrice | undefined> => {
      const key = flashPriceKey(row.product_id);
      if ((await bounded(cache.get(key), `Reading "${key}"`)) !== null) return undefined;
      const sale = priceOf(row);
      const ttlMs = Math.floor(row.ends_at.getTime() - now());
      if (ttlMs <= 0) return undefined;
      await bounded(cache.set(key, JSON.stringify(sale), { ttlMs }), `Restoring "${key}"`);
      return sale;
    }));
    const written = outcomes.flatMap((outcome) =>
      outcome.status === "fulfilled" && outcome.value ? [outcome.value] : []
    );
    restored += written.length;
    pricesRestored.inc(written.length);
    // Before any failure is thrown: a written key is always checked against an end that raced it.
    if (written.length > 0) takenBack += await takeBackEnded(written);
    const failed = outcomes.find((outcome) => outcome.status === "rejected");
    if (failed) throw failed.reason;
    if (rows.length < limit) return { checked, restored, takenBack };
  }
  return { checked, restored, takenBack, next: cursor };

  /** Deletes the restored keys of sales ended since they were read; resolves with how many it deleted. */
  async function takeBackEnded(written: readonly FlashPrice[]): Promise<number> {
    const ended = await bounded(
      sql.query<{ sale_id: string }>`
        select sale_id::text as sale_id from flash_sales
        where sale_id = any(${written.map((sale) => sale.saleId)}::uuid[]) and ended_at is not null`,
      "Reading restored flash sales",
    );
    let deleted = 0;
    for (const { sale_id: saleId } of ended) {
      const key = flashPriceKey(written.find((sale) => sale.saleId === saleId)!.productId);
      // Like the projection's end: only this sale's price goes.
      if (saleIdOf(await bounded(cache.get(key), `Reading "${key}"`)) !== saleId) continue;
      deleted += await bounded(cache.del(key), `Deleting "${key}"`);
    }
    return deleted;
  }
}

/** Starts the loop; the first pass runs at once, then one every `intervalMs`. */
export function startFlashPriceReconciler(options: FlashPriceReconcilerOptions): FlashPriceReconciler {
  const intervalMs = options.intervalMs ?? 15_000;
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) {
    throw new RangeError(`startFlashPriceReconciler() intervalMs must be a positive integer, got ${intervalMs}`);
  }
  boundsOf(options);
  let stopped = false;
  const pause = wakeableSleep();
  let cursor: RunningSaleCursor | undefined;
  let firstPassDone = () => {};
  const firstPass = new Promise<void>((resolve) => firstPassDone = resolve);

  async function pass(): Promise<void> {
    try {
      const result = await reconcileFlashPrices(options, cursor);
      cursor = result.next;
      if (result.restored > 0) {
        // Not an error, but a sign the cache lost keys (restart, eviction): worth an operator's look.
        log.warn("flash sale prices restored from the database; the cache had lost them", {
          restored: result.restored,
          takenBack: result.takenBack,
          checked: result.checked,
        });
      }
    } catch (error) {
      log.warn("flash price reconcile failed; will retry", { error: String(error), retryMs: intervalMs });
    }
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      await pass();
      firstPassDone();
      if (stopped) break;
      await pause.sleep(intervalMs);
    }
    firstPassDone();
  }

  const looping = loop();
  return {
    firstPass,
    stop: async () => {
      stopped = true;
      pause.wake();
      await looping;
    },
  };
}

function boundsOf(options: FlashPriceReconcilerOptions) {
  const bounds = {
    salesPerPassMax: options.salesPerPassMax ?? 1_000,
    pageSize: options.pageSize ?? 100,
    callTimeoutMs: options.callTimeoutMs ?? 2_000,
  };
  for (const [name, value] of Object.entries(bounds)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Flash price reconciler ${name} must be a positive integer, got ${value}`);
    }
  }
  return bounds;
}

/** The cached value of a running sale: the `started` event's payload, which the projection stores as is. */
function priceOf(row: RunningSaleRow): FlashPrice {
  return {
    saleId: row.sale_id,
    productId: row.product_id,
    price: row.price,
    currency: row.currency,
    endsAt: row.ends_at.toISOString(),
  };
}
