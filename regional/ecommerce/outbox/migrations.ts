/** @module Tables of the transactional outbox and of idempotent consumers. */

export const outboxMigrations = [
  {
    id: "ecommerce-outbox-001",
    sql: `
      create table if not exists outbox (
        id bigserial primary key,
        event_id uuid not null unique,
        topic text not null,
        partition_key text not null,
        -- The envelope exactly as it will be published (text, not jsonb, so the bytes do not change).
        envelope text not null,
        headers jsonb not null default '{}'::jsonb,
        created_at timestamptz not null default now(),
        published_at timestamptz
      );
      create index if not exists outbox_unpublished on outbox (id) where published_at is null;
      create table if not exists processed_events (
        consumer text not null,
        event_id uuid not null,
        processed_at timestamptz not null default now(),
        primary key (consumer, event_id)
      );
    `,
  },
  {
    // The marker purge (purgeProcessedEvents) finds old markers by processed_at. Markers are appended in time
    // order, so a BRIN index (a few pages, almost free to maintain) serves it where a B-tree would add a
    // write to every processed event.
    id: "ecommerce-outbox-002",
    sql: `create index if not exists processed_events_processed_at on processed_events using brin (processed_at);`,
  },
] as const;
