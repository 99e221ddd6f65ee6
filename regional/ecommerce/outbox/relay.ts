/**
 * @module
 * The outbox relay: publishes unpublished outbox rows to the event log in id order, then marks them
 * published. Several relays (several processes) may run: one transaction-scoped advisory lock lets one
 * publish at a time, so rows go out in id order across relays, and each entity's events keep their order. The event log's producer is idempotent with acks=all.
 * Published rows are kept `retainPublishedMs` (for a look at what went out) and then deleted in bounded
 * batches, so the table holds minutes of traffic, not all of it.
 */
import type { EventLog, Sql } from "../../../shared/ports/mod.ts";
import { log } from "../../../shared/observability/mod.ts";
import { deleteInBatches, type PurgeBounds } from "../../../shared/ports/sql_purge.ts";
import { wakeableSleep } from "../../../shared/runtime/wakeable_sleep.ts";

export interface OutboxRelayOptions {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  /** Rows published per transaction. @default 100 */
  readonly batchSize?: number;
  /** Poll interval when idle; `nudge()` wakes the relay at once after a commit. @default 200 */
  readonly pollIntervalMs?: number;
  /** Backoff after a failed publish (the broker may be down). @default 1000 */
  readonly failureBackoffMs?: number;
  /** How long a published row stays before the purge deletes it. @default 600_000 (10 min) */
  readonly retainPublishedMs?: number;
  /** How often published rows past their retention are purged. @default 60_000 */
  readonly purgeIntervalMs?: number;
}

/**
 * Deletes published rows older than `retainMs`, oldest first, in bounded batches ({@link deleteInBatches});
 * resolves with how many it deleted. Walking the primary key in id order finds the oldest published rows
 * first, so no index on `published_at` is needed.
 */
export async function purgePublishedOutbox(sql: Sql, retainMs: number, bounds?: PurgeBounds): Promise<number> {
  return await deleteInBatches(async (limit) => {
    const deleted = await sql.query<{ id: string }>`
      delete from outbox where id in (
        select id from outbox where published_at < now() - ${retainMs / 1_000} * interval '1 second'
        order by id limit ${limit})
      returning id::text as id`;
    return deleted.length;
  }, bounds);
}

/** Arbitrary constant advisory-lock key ("bvoutbx") serialising the relays of one database. */
const RELAY_LOCK_KEY = 0x62766f75746278n;

export interface OutboxRelay {
  /** Wakes the relay now (call after committing a transaction that appended to the outbox). */
  nudge(): void;
  /** Publishes everything pending now; resolves with how many rows were published. */
  drain(): Promise<number>;
  /** Stops after the batch in flight. */
  stop(): Promise<void>;
}

interface OutboxRow extends Record<string, unknown> {
  id: string;
  topic: string;
  partition_key: string;
  envelope: string;
  headers: Record<string, string>;
}

export function startOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const batchSize = options.batchSize ?? 100;
  const pollIntervalMs = options.pollIntervalMs ?? 200;
  const failureBackoffMs = options.failureBackoffMs ?? 1_000;
  const retainPublishedMs = options.retainPublishedMs ?? 600_000;
  const purgeIntervalMs = options.purgeIntervalMs ?? 60_000;
  let stopped = false;
  const pause = wakeableSleep();
  // A nudge that comes while a drain runs may be for a row that drain's select did not see: remembered, it
  // starts the next drain at once instead of after the poll interval (up to 200 ms of latency per event).
  let nudged = false;
  let running: Promise<number> = Promise.resolve(0);

  async function publishBatch(): Promise<number> {
    return await options.sql.transaction(async (tx) => {
      // One relay publishes at a time. With `skip locked` alone, a second relay (another process) claimed
      // the rows after the first one's batch and could publish them first, or while the first one's failed
      // publish rolled back: an entity's later event then reached the topic before its earlier one. Held to
      // the commit, so the next relay's select sees this batch published.
      await tx.query`select pg_advisory_xact_lock(${RELAY_LOCK_KEY.toString()}::int8)`;
      const rows = await tx.query<OutboxRow>`
        select id::text as id, topic, partition_key, envelope, headers from outbox
        where published_at is null order by outbox.id limit ${batchSize} for update skip locked`;
      if (rows.length === 0) return 0;
      // One publish per topic, each keeping id order; keys keep per-entity order inside a topic.
      const byTopic = new Map<string, OutboxRow[]>();
      for (const row of rows) byTopic.set(row.topic, [...(byTopic.get(row.topic) ?? []), row]);
      for (const [topic, topicRows] of byTopic) {
        await options.eventLog.publish(
          topic,
          topicRows.map((r) => ({ key: r.partition_key, value: r.envelope, headers: r.headers })),
        );
      }
      const ids = rows.map((r) => r.id);
      await tx.query`update outbox set published_at = now() where id = any(${ids}::bigint[])`;
      return rows.length;
    });
  }

  async function drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const published = await publishBatch();
      total += published;
      if (published < batchSize) return total;
    }
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      let delayMs = pollIntervalMs;
      nudged = false;
      try {
        running = drain();
        await running;
      } catch (error) {
        log.warn("outbox relay could not publish; will retry", { error: String(error), backoffMs: failureBackoffMs });
        delayMs = failureBackoffMs;
      }
      if (stopped) break;
      if (nudged && delayMs === pollIntervalMs) continue;
      await pause.sleep(delayMs);
    }
  }

  const looping = loop();
  let purging: Promise<unknown> = Promise.resolve();
  const purgeTimer = setInterval(() => {
    purging = purgePublishedOutbox(options.sql, retainPublishedMs).catch((error) =>
      log.warn("outbox purge failed; will retry", { error: String(error), intervalMs: purgeIntervalMs })
    );
  }, purgeIntervalMs);
  return {
    nudge: () => {
      nudged = true;
      pause.wake();
    },
    drain: async () => {
      await running.catch(() => 0);
      return await drain();
    },
    stop: async () => {
      stopped = true;
      clearInterval(purgeTimer);
      pause.wake();
      await Promise.all([looping, purging]);
    },
  };
}
