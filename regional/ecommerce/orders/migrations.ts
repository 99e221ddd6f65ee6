/** @module Tables of the order context (seed 003 section 5): orders, their items, history, payments, idempotency keys. */

export const ordersMigrations: readonly { id: string; sql: string }[] = [
  {
    id: "ecommerce-orders-001",
    sql: `
      create table if not exists orders (
        id uuid primary key,
        user_id text not null,
        status text not null check (status in ('PENDING', 'RESERVED', 'PAID', 'FULFILLED', 'CANCELED')),
        total_amount numeric(12, 2) not null check (total_amount >= 0),
        currency char(3) not null,
        created_at timestamptz not null,
        updated_at timestamptz not null,
        -- Bumped by every transition: an update names the version it read (optimistic concurrency).
        version int not null default 1
      );
      -- "My orders, newest first" is a keyset scan of this index.
      create index if not exists orders_by_user on orders (user_id, created_at desc, id desc);

      -- No foreign key to products: the catalog is another context and may archive a product later;
      -- the item keeps the price it was sold at.
      create table if not exists order_items (
        order_id uuid not null references orders (id),
        -- Keeps the items in the order the customer listed them.
        line_no int not null,
        product_id uuid not null,
        qty int not null check (qty between 1 and 1000),
        price numeric(12, 2) not null check (price >= 0),
        primary key (order_id, product_id)
      );

      create table if not exists order_status_history (
        id bigserial primary key,
        order_id uuid not null references orders (id),
        from_status text,
        to_status text not null,
        reason text not null,
        actor text not null,
        at timestamptz not null
      );
      create index if not exists order_status_history_by_order on order_status_history (order_id, id);

      create table if not exists payments (
        id bigserial primary key,
        order_id uuid not null references orders (id),
        status text not null check (status in ('APPROVED', 'DECLINED', 'UNAVAILABLE')),
        auth_code text,
        reason text,
        via text,
        amount numeric(12, 2) not null,
        currency char(3) not null,
        created_at timestamptz not null
      );
      create index if not exists payments_by_order on payments (order_id, id);

      create table if not exists idempotency_keys (
        user_id text not null,
        key text not null,
        request_hash text not null,
        status text not null check (status in ('in_flight', 'completed')),
        response_status int,
        response_headers jsonb,
        response_body text,
        created_at timestamptz not null,
        expires_at timestamptz not null,
        primary key (user_id, key)
      );
      create index if not exists idempotency_keys_expiry on idempotency_keys (expires_at);
    `,
  },
  {
    // The effect a request recorded on its claim (the order id): a retry after a crash answers that order
    // instead of placing a second one (idempotency.ts, IdempotencyClaim).
    id: "ecommerce-orders-002",
    sql: `alter table idempotency_keys add column if not exists effect_ref text;`,
  },
  {
    // Orders still open (PENDING, RESERVED) by age: the lapse sweeper (order_lapse.ts) finds the ones whose
    // stock hold has lapsed without reading the closed history.
    id: "ecommerce-orders-003",
    sql: `create index if not exists orders_open_by_created on orders (created_at)
            where status in ('PENDING', 'RESERVED');`,
  },
];
