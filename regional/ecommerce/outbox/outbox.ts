/**
 * @module
 * The transactional outbox: a state change and the event announcing it are written in ONE transaction
 * (`appendToOutbox` with the caller's transaction), and a relay publishes unpublished rows to the event log
 * afterwards. A crash between the commit and the publish loses nothing (the row waits); a crash between the
 * publish and marking the row published republishes it, so consumers are idempotent by eventId
 * ({@linkcode processOnce}).
 */
import { createEnvelope, type Envelope, type EventDefinition } from "../../../shared/contracts/envelope.ts";
import type { SqlExecutor } from "../../../shared/ports/sql.ts";
import { deleteInBatches, type PurgeBounds } from "../../../shared/ports/sql_purge.ts";
import { currentTraceContext, newTraceContext, traceHeaders } from "../../../shared/observability/mod.ts";

/** The column values of one outbox row, for a statement that writes it beside other rows (one round trip). */
export interface OutboxRowValues {
  readonly eventId: string;
  readonly topic: string;
  readonly partitionKey: string;
  /** The envelope as published, byte for byte. */
  readonly envelope: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** The outbox row of `envelope`; the topic is its event type. */
export function outboxRowOf(envelope: Envelope): OutboxRowValues {
  return {
    eventId: envelope.eventId,
    topic: envelope.eventType,
    partitionKey: envelope.partitionKey,
    envelope: JSON.stringify(envelope),
    // The trace of the request that caused the event travels with it, not the relay's.
    headers: { ...traceHeaders(), "event-type": envelope.eventType },
  };
}

/** Appends `envelope` to the outbox inside `tx`; the topic is its event type. */
export async function appendToOutbox(tx: SqlExecutor, envelope: Envelope): Promise<void> {
  const row = outboxRowOf(envelope);
  // An object (not JSON text) for the jsonb parameter: each adapter serialises it once.
  await tx.query`
    insert into outbox (event_id, topic, partition_key, envelope, headers)
    values (${row.eventId}, ${row.topic}, ${row.partitionKey}, ${row.envelope}, ${row.headers})`;
}

/**
 * Runs `effect` at most once per (consumer, eventId): the marker row and the effect share one transaction,
 * so a redelivered event is skipped. Resolves with false when the event had been processed already.
 */
export async function processOnce(
  sql: { transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> },
  consumer: string,
  eventId: string,
  effect: (tx: SqlExecutor) => Promise<void>,
): Promise<boolean> {
  return await sql.transaction(async (tx) => {
    const inserted = await tx.query<{ event_id: string }>`
      insert into processed_events (consumer, event_id) values (${consumer}, ${eventId})
      on conflict do nothing returning event_id`;
    if (inserted.length === 0) return false;
    await effect(tx);
    return true;
  });
}

/**
 * How long a consumer's marker is kept: longer than any record can stay in a topic here (retention 24 h after
 * its segment rolls, which a quiet partition does after 7 days: scripts/kafka/_config.ts), so every event the
 * log can still deliver again finds its marker. 8 days plus a day of margin.
 */
export const PROCESSED_EVENTS_RETAIN_MS = 9 * 24 * 60 * 60_000;

/**
 * Deletes consumer markers older than `retainMs` in bounded batches ({@link deleteInBatches}); resolves with
 * how many it deleted. Without it `processed_events` grows by one row per event and consumer forever.
 */
export async function purgeProcessedEvents(
  sql: SqlExecutor,
  retainMs: number = PROCESSED_EVENTS_RETAIN_MS,
  bounds?: PurgeBounds,
): Promise<number> {
  // Pages written since the last run are summarized first: an unsummarized BRIN range matches every scan, and
  // autovacuum (which would summarize them) may be off, as it is on this machine's PostgreSQL.
  await sql.query`select brin_summarize_new_values('processed_events_processed_at'::regclass)`;
  return await deleteInBatches(async (limit) => {
    const deleted = await sql.query<{ consumer: string }>`
      delete from processed_events where (consumer, event_id) in (
        select consumer, event_id from processed_events
        where processed_at < now() - ${retainMs / 1_000} * interval '1 second' limit ${limit})
      returning consumer`;
    return deleted.length;
  }, bounds);
}

/** An envelope for `definition` carrying the current trace and correlation ids. */
export function envelopeFor<P>(definition: EventDefinition<P>, payload: P, producer: string): Envelope<P> {
  const trace = currentTraceContext() ?? newTraceContext();
  return createEnvelope(definition, payload, { producer, traceId: trace.traceId, correlationId: trace.correlationId });
}
