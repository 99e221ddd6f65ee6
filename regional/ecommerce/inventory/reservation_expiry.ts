/**
 * @module
 * The sweeper that expires ACTIVE reservations past `expires_at`, so stock held by an order that never
 * paid returns to sale. Several processes may sweep at once: lines are claimed with `skip locked`.
 */
import { log } from "../../../shared/observability/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { expireReservations } from "./reservations.ts";
import { wakeableSleep } from "../../../shared/runtime/wakeable_sleep.ts";

export interface ReservationExpiryOptions {
  readonly sql: Sql;
  /** Called after a sweep expired something, so the outbox relay publishes the stock events at once. */
  readonly nudgeOutbox: () => void;
  /** Pause between sweeps. @default 1000 */
  readonly intervalMs?: number;
  /** Reservation lines expired per transaction. @default 100 */
  readonly batchSize?: number;
  /** Batches per sweep, so a large backlog cannot hold the loop (it continues at the next sweep). @default 10 */
  readonly batchesPerSweepMax?: number;
  /** The clock, in ms since the epoch (tests inject one). @default Date.now */
  readonly now?: () => number;
  /**
   * True while this region's database is a replica of the writer region (orders/writer): the writer's own
   * sweeper expires the reservations and replication brings the result; a local update would be refused.
   * @default never paused
   */
  readonly paused?: () => Promise<boolean>;
}

export interface ReservationExpiry {
  /** Runs one sweep now (tests, and a final sweep at shutdown if wanted); resolves with lines expired. */
  sweep(): Promise<number>;
  /** Stops after the sweep in flight. */
  stop(): Promise<void>;
}

/** Starts sweeping every `intervalMs`; the first sweep runs at once. */
export function startReservationExpiry(options: ReservationExpiryOptions): ReservationExpiry {
  const intervalMs = options.intervalMs ?? 1_000;
  const batchSize = options.batchSize ?? 100;
  const batchesMax = options.batchesPerSweepMax ?? 10;
  if (!(intervalMs > 0)) {
    throw new RangeError(`startReservationExpiry() intervalMs must be positive, got ${intervalMs}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`startReservationExpiry() batchSize must be a positive integer, got ${batchSize}`);
  }
  let stopped = false;
  const pause = wakeableSleep();
  let inFlight: Promise<number> = Promise.resolve(0);

  async function sweepOnce(): Promise<number> {
    if (await options.paused?.()) return 0;
    let total = 0;
    for (let batch = 0; batch < batchesMax; batch++) {
      const expired = await expireReservations(options.sql, { now: options.now, batchSize });
      total += expired;
      if (expired < batchSize) break;
    }
    if (total > 0) {
      log.info("reservations expired", { lines: total });
      options.nudgeOutbox();
    }
    return total;
  }

  const sweep = (): Promise<number> => {
    // One sweep at a time per process: a manual sweep waits for the one in flight.
    inFlight = inFlight.catch(() => 0).then(sweepOnce);
    return inFlight;
  };

  async function loop(): Promise<void> {
    while (!stopped) {
      try {
        await sweep();
      } catch (error) {
        log.warn("reservation expiry sweep failed; will retry", { error: String(error) });
      }
      if (stopped) break;
      await pause.sleep(intervalMs);
    }
  }

  const looping = loop();
  return {
    sweep,
    stop: async () => {
      stopped = true;
      pause.wake();
      await looping;
    },
  };
}
