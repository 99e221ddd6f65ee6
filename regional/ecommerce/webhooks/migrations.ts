/**
 * @module
 * Tables of partner webhooks (seed 003 section 5): subscriptions with their signing secrets, and one row per
 * delivery attempt. Applied after the outbox migrations (the failure event goes through the outbox) and after the
 * order writer's (migration 003 guards both tables with its writer guard).
 */
import { writerGuardMigrationSql } from "../../wiring/writer/mod.ts";

/**
 * Partner subscriptions follow the region's single writer (orders/writer): only the writer region's outbox publishes
 * the order events they are for, so a subscription held by the replica alone would never be delivered. Both tables
 * replicate with the order tables (the attempts reference the subscriptions: one cannot be truncated without the
 * other) and refuse local writes in a replica. Parents first.
 */
export const REPLICATED_WEBHOOK_TABLES = Object.freeze(["webhook_subscriptions", "webhook_delivery_attempts"]);

export const webhooksMigrations: readonly { id: string; sql: string }[] = [
  {
    id: "ecommerce-webhooks-001",
    sql: `
      create table if not exists webhook_subscriptions (
        id uuid primary key,
        owner_user_id text not null,
        url text not null check (length(url) <= 2048),
        event_types text[] not null,
        -- "aesgcm:v1:<iv>:<ciphertext>" when a secrets key is configured, else "plain:whsec_…".
        secret text not null,
        previous_secret text,
        previous_secret_expires_at timestamptz,
        status text not null default 'ACTIVE' check (status in ('ACTIVE', 'DISABLED', 'DELETED')),
        disabled_reason text,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      );
      create index if not exists webhook_subscriptions_owner on webhook_subscriptions (owner_user_id)
        where status <> 'DELETED';
      create index if not exists webhook_subscriptions_active on webhook_subscriptions using gin (event_types)
        where status = 'ACTIVE';
      create table if not exists webhook_delivery_attempts (
        id bigserial primary key,
        delivery_id uuid not null,
        subscription_id uuid not null references webhook_subscriptions (id),
        event_id uuid not null,
        event_type text not null,
        attempt int not null check (attempt >= 1),
        outcome text not null check (outcome in ('DELIVERED', 'FAILED', 'CIRCUIT_OPEN', 'GONE', 'SKIPPED')),
        -- The attempt after which the delivery went to the dead-letter queue.
        final boolean not null default false,
        http_status int,
        error text check (length(error) <= 1000),
        duration_ms int,
        attempted_at timestamptz not null default now()
      );
      create index if not exists webhook_delivery_attempts_delivery on webhook_delivery_attempts (delivery_id);
      create index if not exists webhook_delivery_attempts_subscription
        on webhook_delivery_attempts (subscription_id, attempted_at);
      -- At most one terminal row per delivery: a duplicate message finds it and does nothing.
      create unique index if not exists webhook_delivery_attempts_terminal on webhook_delivery_attempts (delivery_id)
        where outcome in ('DELIVERED', 'GONE', 'SKIPPED') or final;
    `,
  },
  {
    // The housekeeping purge (delivery_attempts_purge.ts) finds the oldest rows by this.
    id: "ecommerce-webhooks-002",
    sql: `
      create index if not exists webhook_delivery_attempts_attempted_at on webhook_delivery_attempts (attempted_at);
    `,
  },
  {
    // Single writer (REPLICATED_WEBHOOK_TABLES): statement triggers refuse local writes (SQLSTATE 25006) while the
    // region's order_writer row names another region; replication's apply worker still writes them. A replica's
    // e-commerce service forwards the subscription writes to the writer (orders/writer/forward_writes.ts).
    id: "ecommerce-webhooks-003",
    sql: writerGuardMigrationSql(REPLICATED_WEBHOOK_TABLES),
  },
];
