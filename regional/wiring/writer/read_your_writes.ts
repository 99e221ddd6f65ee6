/**
 * @module
 * Read-your-writes for a write forwarded to the writer region: the writer answers with its WAL position
 * taken after the write committed (`x-bv-writer-lsn`), and the forwarding replica holds the answer until
 * its subscription has confirmed that position (`pg_stat_subscription.latest_end_lsn`, which the apply
 * worker reports only after applying everything before it), bounded by `READ_YOUR_WRITES_WAIT_MS_MAX`. So
 * the client's next read in the replica sees its cart line or product. The bound keeps a lagging or
 * stopped replica from holding writes: past it the answer goes out anyway (the read may then be stale).
 */
import type { Sql } from "../../../shared/ports/mod.ts";

/** Set by the writer on its answer to a forwarded write: its WAL position after the write. */
export const WRITER_LSN_HEADER = "x-bv-writer-lsn";
/** Set by the replica on a forwarded answer: how long it waited for its copy to catch up, in ms. */
export const REPLICA_WAIT_HEADER = "x-bv-replica-wait-ms";
/** Longest a forwarded answer is held for the replica to catch up. */
export const READ_YOUR_WRITES_WAIT_MS_MAX = 500;
/** First poll gap; doubled per poll up to `POLL_MS_MAX`, so a lagging replica (a busy database) is not
 * asked ~250 times per write. Lag is usually 1–20 ms, which the first few short polls cover. */
const POLL_MS_MIN = 2;
const POLL_MS_MAX = 50;
const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;

/** How the middleware reads WAL positions; `sqlReplicationPositions` over the region's database. */
export interface ReplicationPositions {
  /** The writer's WAL position now (`pg_current_wal_lsn()`). */
  writerLsn(): Promise<string>;
  /** True when this replica's subscription has applied and confirmed everything up to `lsn`. */
  replicaHasApplied(lsn: string): Promise<boolean>;
}

export function sqlReplicationPositions(sql: Sql): ReplicationPositions {
  return {
    async writerLsn() {
      const [row] = await sql.query<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`;
      return row.lsn;
    },
    async replicaHasApplied(lsn) {
      // pg_stat_subscription lists the whole cluster's subscriptions: only this database's count.
      const [row] = await sql.query<{ ok: boolean | null }>`
        select bool_or(w.latest_end_lsn >= ${lsn}::pg_lsn) as ok
        from pg_stat_subscription w join pg_subscription s on s.oid = w.subid
        where w.relid is null and s.subdbid = (select oid from pg_database where datname = current_database())`;
      return row?.ok === true;
    },
  };
}

/** Waits (bounded) until the replica has applied `lsn`; resolves with the ms waited and whether it caught up. */
export async function waitForReplica(
  positions: ReplicationPositions,
  lsn: string | null,
  boundMs: number = READ_YOUR_WRITES_WAIT_MS_MAX,
): Promise<{ waitedMs: number; caughtUp: boolean }> {
  const started = performance.now();
  if (lsn === null || !LSN.test(lsn)) return { waitedMs: 0, caughtUp: false };
  let pollMs = POLL_MS_MIN;
  for (;;) {
    if (await positions.replicaHasApplied(lsn)) return { waitedMs: performance.now() - started, caughtUp: true };
    if (performance.now() - started >= boundMs) return { waitedMs: performance.now() - started, caughtUp: false };
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    pollMs = Math.min(pollMs * 2, POLL_MS_MAX);
  }
}
