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

/** An envelope for `definition` carrying the current trace and correlation ids. */
export function envelopeFor<P>(definition: EventDefinition<P>, payload: P, producer: string): Envelope<P> {
  const trace = currentTraceContext() ?? newTraceContext();
  return createEnvelope(definition, payload, { producer, traceId: trace.traceId, correlationId: trace.correlationId });
}
