/**
 * @module
 * Tables of the inventory context (seed 003 section 5: `inventory_stock`, `inventory_adjustment`, plus the
 * reservations of the gRPC contract). They reference `products`, so the catalog migrations run first.
 * Stock can never go negative: the checks below hold even if application code is wrong.
 */

export const inventoryMigrations: readonly { readonly id: string; readonly sql: string }[] = [
  {
    id: "ecommerce-inventory-001",
    sql: `
      create table if not exists inventory_stock (
        product_id uuid primary key references products (id),
        -- A copy of products.sku taken at each adjustment, so events and snapshots need no join.
        sku text not null,
        on_hand integer not null default 0 check (on_hand >= 0),
        reserved integer not null default 0 check (reserved >= 0),
        updated_at timestamptz not null default now(),
        constraint inventory_stock_reserved_within_on_hand check (reserved <= on_hand)
      );
      -- The ledger of every change of on_hand (admin adjustments, sensors, fulfilled reservations).
      create table if not exists inventory_adjustment (
        id bigserial primary key,
        product_id uuid not null references products (id),
        delta integer not null check (delta <> 0),
        reason text not null,
        source text not null,
        -- Set by at-least-once feeds (MQTT sensors) so a redelivered delta is applied once.
        message_id text unique,
        created_at timestamptz not null default now()
      );
      create index if not exists inventory_adjustment_by_product on inventory_adjustment (product_id, created_at);
      -- One row per ReserveStock request: the idempotency record and the first outcome, failures included.
      create table if not exists inventory_reservation_requests (
        reservation_id uuid primary key,
        request_hash text not null,
        ok boolean,
        failed_product_id uuid,
        requested integer,
        available integer,
        created_at timestamptz not null default now()
      );
      create table if not exists inventory_reservations (
        reservation_id uuid not null references inventory_reservation_requests (reservation_id),
        product_id uuid not null references inventory_stock (product_id),
        qty integer not null check (qty > 0),
        status text not null check (status in ('ACTIVE', 'RELEASED', 'CONFIRMED', 'COMMITTED', 'EXPIRED')),
        expires_at timestamptz not null,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        primary key (reservation_id, product_id)
      );
      create index if not exists inventory_reservations_expiring on inventory_reservations (expires_at)
        where status = 'ACTIVE';
    `,
  },
];
