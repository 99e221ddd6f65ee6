/**
 * @module
 * The sweeper that cancels orders whose stock hold has lapsed. Inventory expires a reservation
 * `reservationTtlSec` after it was made, but nothing told the order: it stayed RESERVED (payable, for stock
 * already back on sale) or, when the process died between the insert and the reservation, PENDING forever
 * with no terminal event. An order still PENDING or RESERVED `reservationTtlSec` + `graceMs` after it was
 * created is canceled here (reason "reservation expired", with the canceled event) and its stock released.
 * A payment never starts so close to the hold's end that it could still run (pay_order.ts), so the sweeper
 * never cancels an order under a charge. Several processes may sweep: a cancel names the version it read,
 * so an order is canceled once.
 */
import { log } from "../../../shared/observability/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { listOpenOrderHeadsCreatedBefore } from "./order_store.ts";
import { cancelLapsed } from "./pay_order.ts";

export interface OrderLapseOptions {
  readonly sql: Sql;
  /** Gives an order's stock back (idempotent). */
  readonly release: (orderId: string) => Promise<void>;
  /** Called after a cancel, so the outbox relay publishes the canceled event at once. */
  readonly nudgeOutbox: () => void;
  /** The stock hold's lifetime, as the order service asks inventory for it. */
  readonly reservationTtlSec: number;
  /**
   * Extra time past `createdAt + reservationTtlSec`, so inventory's own expiry (which counts from the
   * reservation, made after the order) has come first. @default 60_000
   */
  readonly graceMs?: number;
  /** Pause between sweeps. @default 10_000 */
  readonly intervalMs?: number;
  /** Orders read per batch. @default 100 */
  readonly batchSize?: number;
  /** Batches per sweep, so a backlog cannot hold the loop (it continues at the next sweep). @default 10 */
  readonly batchesPerSweepMax?: number;
  /** The clock (tests inject one). @default () => new Date() */
  readonly now?: () => Date;
  /** True while this region's order tables are a replica: the writer region sweeps. @default never */
  readonly paused?: () => Promise<boolean>;
}

export interface OrderLapse {
  /** Runs one sweep now; resolves with how many orders it canceled. */
  sweep(): Promise<number>;
  /** Stops after the sweep in flight. */
  stop(): Promise<void>;
}

/** Starts sweeping every `intervalMs`; the first sweep runs after one interval. */
export function startOrderLapse(options: OrderLapseOptions): OrderLapse {
  const intervalMs = options.intervalMs ?? 10_000;
  const batchSize = options.batchSize ?? 100;
  const batchesMax = options.batchesPerSweepMax ?? 10;
  const graceMs = options.graceMs ?? 60_000;
  const now = options.now ?? (() => new Date());
  for (const [name, value] of Object.entries({ intervalMs, batchSize, batchesMax, graceMs })) {
    if (!(Number.isInteger(value) && value >= (name === "graceMs" ? 0 : 1))) {
      throw new RangeError(`startOrderLapse() ${name} must be a whole number of at least 1, got ${value}`);
    }
  }
  const deps = { sql: options.sql, now, nudgeOutbox: options.nudgeOutbox, release: options.release };
  let stopped = false;
  let inFlight: Promise<number> = Promise.resolve(0);

  async function sweepOnce(): Promise<number> {
    if (await options.paused?.()) return 0;
    let canceled = 0;
    const cutoff = new Date(now().getTime() - options.reservationTtlSec * 1_000 - graceMs);
    for (let batch = 0; batch < batchesMax && !stopped; batch++) {
      const lapsed = await listOpenOrderHeadsCreatedBefore(options.sql, cutoff, batchSize);
      for (const order of lapsed) {
        if (await cancelLapsed(deps, order)) canceled++;
      }
      if (lapsed.length < batchSize) break;
    }
    if (canceled > 0) log.info("canceled orders whose stock hold lapsed", { canceled });
    return canceled;
  }

  const sweep = (): Promise<number> => {
    const run = inFlight.then(sweepOnce);
    inFlight = run.catch(() => 0);
    return run;
  };
  const timer = setInterval(() => {
    if (stopped) return;
    sweep().catch((error) => log.warn("order lapse sweep failed; will retry", { error: String(error), intervalMs }));
  }, intervalMs);
  return {
    sweep,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await inFlight;
    },
  };
}
