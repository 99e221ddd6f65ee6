/** @module The table of the notification context: every order event once, with its stream position. */

export const notificationsMigrations: readonly { id: string; sql: string }[] = [
  {
    id: "ecommerce-notifications-001",
    sql: `
      create table if not exists order_notifications (
        -- The stream position clients resume from ("event id" on WebSocket and SSE). Rows are inserted under
        -- one advisory lock, so ids become visible in increasing order and a cursor never skips a row.
        id bigserial primary key,
        order_id text not null,
        -- 1, 2, 3 … per order, in the order the events were consumed (the partition order of the order's key).
        seq int not null check (seq >= 1),
        event_id uuid not null unique,
        event_type text not null,
        status text not null check (status in ('PENDING', 'PAID', 'CANCELED', 'FULFILLED')),
        user_id text not null,
        occurred_at timestamptz not null,
        recorded_at timestamptz not null default now(),
        unique (order_id, seq)
      );
      create index if not exists order_notifications_by_order on order_notifications (order_id, id);
      create index if not exists order_notifications_by_user on order_notifications (user_id, id);
    `,
  },
];
