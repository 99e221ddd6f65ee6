/**
 * @module
 * Tables of the analytics context: the streaming revenue projection (`revenue_minute` and the per-order
 * state it needs to subtract a cancel after payment) and the daily batch (`daily_sales`).
 */

export const analyticsMigrations: readonly { id: string; sql: string }[] = [
  {
    id: "ecommerce-analytics-001",
    sql: `
      -- One row per (UTC minute, currency): net revenue and net paid orders whose payment or cancellation
      -- happened (event time, the envelope's occurredAt) in that minute. A cancel after payment subtracts.
      create table if not exists revenue_minute (
        window_start timestamptz not null check (window_start = date_trunc('minute', window_start)),
        currency char(3) not null,
        revenue numeric(18, 4) not null,
        orders int not null,
        updated_at timestamptz not null,
        primary key (window_start, currency)
      );

      -- What the projection knows about each order: the paid amount (only paid carries it) and when it was
      -- paid and canceled. A cancel needs the amount to subtract; a cancel seen before its payment (events
      -- out of order) waits here, so the outcome does not depend on delivery order.
      create table if not exists revenue_order_state (
        order_id text primary key,
        amount numeric(18, 4),
        currency char(3),
        paid_at timestamptz,
        canceled_at timestamptz,
        check ((amount is null) = (paid_at is null) and (currency is null) = (paid_at is null))
      );

      -- The batch path: one row per (UTC day, currency), recomputed from the orders tables by the daily job.
      create table if not exists daily_sales (
        date date not null,
        currency char(3) not null,
        revenue numeric(18, 4) not null,
        orders int not null,
        computed_at timestamptz not null,
        primary key (date, currency)
      );
    `,
  },
];
