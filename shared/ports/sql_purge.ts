/**
 * @module
 * Bounded deletes for housekeeping over the SQL port: a table that only grows (published outbox rows,
 * expired idempotency keys, old consumer markers) is trimmed a batch per statement, so no purge holds locks
 * or writes WAL for minutes, and a few statements per run, so one run cannot occupy the connection pool.
 */

/** How a purge is bounded: rows per statement, statements per call. */
export interface PurgeBounds {
  readonly batch: number;
  readonly statementsMax: number;
}

/** 5,000 rows a statement, 20 statements a call: up to 100,000 rows a run (about 1,600 a second if run each minute). */
export const DEFAULT_PURGE_BOUNDS: PurgeBounds = Object.freeze({ batch: 5_000, statementsMax: 20 });

/**
 * Calls `deleteBatch(limit)` (one statement deleting at most `limit` rows, resolving with how many it deleted)
 * until a statement deletes fewer than `bounds.batch` or `bounds.statementsMax` statements ran; resolves with
 * the total deleted. Whatever is left waits for the next call.
 */
export async function deleteInBatches(
  deleteBatch: (limit: number) => Promise<number>,
  bounds: PurgeBounds = DEFAULT_PURGE_BOUNDS,
): Promise<number> {
  if (
    !Number.isInteger(bounds.batch) || bounds.batch < 1 || !Number.isInteger(bounds.statementsMax) ||
    bounds.statementsMax < 1
  ) {
    throw new RangeError(`Purge bounds must be positive whole numbers, got ${JSON.stringify(bounds)}`);
  }
  let total = 0;
  for (let i = 0; i < bounds.statementsMax; i++) {
    const deleted = await deleteBatch(bounds.batch);
    total += deleted;
    if (deleted < bounds.batch) break;
  }
  return total;
}
