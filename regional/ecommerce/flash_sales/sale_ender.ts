/**
 * @module
 * Ends flash sales on time. The cache TTL already stops the price at `endsAt`; this loop makes the end an
 * event (`flash_sale.ended`, through the outbox) so SSE subscribers hear about it. It sleeps until the next
 * sale's end (capped, so a sale started by another process is noticed) and is woken when a sale starts
 * here. A process that was down at the end time ends the sale when it comes back: nothing is lost.
 */
import { log } from "../../../shared/observability/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { endDueSales, nextSaleEndMs } from "./flash_sale_store.ts";
import { wakeableSleep } from "../../../shared/runtime/wakeable_sleep.ts";

export interface SaleEnderOptions {
  readonly sql: Sql;
  /** Called after sales were ended, so the relay publishes the ended events at once. */
  readonly nudgeOutbox: () => void;
  /** The longest sleep between checks; bounds how late a sale started by another process ends. @default 1000 */
  readonly checkIntervalMsMax?: number;
  /** Sales ended per transaction. @default 100 */
  readonly batchSize?: number;
  /** The clock, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
}

export interface SaleEnder {
  /** Re-plans the next check now (after a sale started, so a short sale ends on time). */
  wake(): void;
  /** Stops after the check in flight. */
  stop(): Promise<void>;
}

/** Shortest sleep, so a clock disagreement between the database and this process cannot spin the loop. */
const SLEEP_MS_MIN = 5;
/** Batches per check: a backlog is worked off across checks instead of holding one. */
const BATCHES_PER_CHECK_MAX = 10;

/** Starts the loop; the first check runs at once. */
export function startSaleEnder(options: SaleEnderOptions): SaleEnder {
  const intervalMsMax = options.checkIntervalMsMax ?? 1_000;
  const batchSize = options.batchSize ?? 100;
  const now = options.now ?? Date.now;
  if (!(intervalMsMax >= SLEEP_MS_MIN)) {
    throw new RangeError(`startSaleEnder() checkIntervalMsMax must be at least ${SLEEP_MS_MIN}, got ${intervalMsMax}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`startSaleEnder() batchSize must be a positive integer, got ${batchSize}`);
  }
  let stopped = false;
  const pause = wakeableSleep();
  let woken = false;

  /** Ends what is due; resolves with how long to sleep before the next check. */
  async function check(): Promise<number> {
    let ended = 0;
    for (let batch = 0; batch < BATCHES_PER_CHECK_MAX; batch++) {
      const count = await endDueSales(options.sql, { nowMs: now(), batchSize });
      ended += count;
      if (count < batchSize) break;
    }
    if (ended > 0) {
      log.info("flash sales ended", { sales: ended });
      options.nudgeOutbox();
    }
    const nextMs = await nextSaleEndMs(options.sql);
    const untilNextMs = nextMs === null ? intervalMsMax : nextMs - now();
    return Math.min(intervalMsMax, Math.max(SLEEP_MS_MIN, untilNextMs));
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      let sleepMs = intervalMsMax;
      woken = false;
      try {
        sleepMs = await check();
      } catch (error) {
        log.warn("flash sale end check failed; will retry", { error: String(error), retryMs: intervalMsMax });
      }
      // A wake() during the check re-plans at once: the sale it announced may end before `sleepMs`.
      if (stopped || woken) continue;
      await pause.sleep(sleepMs);
    }
  }

  const looping = loop();
  return {
    wake: () => {
      woken = true;
      pause.wake();
    },
    stop: async () => {
      stopped = true;
      pause.wake();
      await looping;
    },
  };
}
