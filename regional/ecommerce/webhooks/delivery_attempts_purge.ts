/**
 * @module
 * Housekeeping of `webhook_delivery_attempts`: one row per attempt, so the table grows with every delivery.
 * Rows older than the retention are deleted in bounded batches (shared/ports/sql_purge.ts). The retention must
 * stay well past a delivery's life (the schedule, restarted at most 3 times: about 3 hours by default), since
 * a delivery's terminal row is what keeps a redelivered copy from being sent again.
 */
import type { SqlExecutor } from "../../../shared/ports/mod.ts";
import { deleteInBatches, type PurgeBounds } from "../../../shared/ports/sql_purge.ts";

/** A week: far past a delivery's life, long enough to answer a partner asking about last week's deliveries. */
export const DELIVERY_ATTEMPTS_RETAIN_MS_DEFAULT = 7 * 24 * 60 * 60_000;

/** Deletes attempt rows older than `retainMs`, a bounded number per call; resolves with how many. */
export async function purgeDeliveryAttempts(
  sql: SqlExecutor,
  retainMs: number = DELIVERY_ATTEMPTS_RETAIN_MS_DEFAULT,
  bounds?: PurgeBounds,
): Promise<number> {
  if (!Number.isSafeInteger(retainMs) || retainMs < 60 * 60_000) {
    throw new RangeError(`purgeDeliveryAttempts() "retainMs" must be at least an hour, got ${retainMs}`);
  }
  return await deleteInBatches(async (limit) => {
    const deleted = await sql.query<{ id: string }>`
      delete from webhook_delivery_attempts where id in (
        select id from webhook_delivery_attempts
        where attempted_at < now() - ${retainMs / 1_000} * interval '1 second' limit ${limit})
      returning id`;
    return deleted.length;
  }, bounds);
}
