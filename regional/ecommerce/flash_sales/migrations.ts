/**
 * @module
 * Tables of the flash-sales context: the sales themselves (the record of what an ADMIN started; the live
 * price is served from the cache) and the region's broadcast log, which numbers every start and end the
 * SSE hubs push so clients can resume with `Last-Event-ID` on any process of the region.
 */

export const flashSalesMigrations: readonly { id: string; sql: string }[] = [
  {
    id: "ecommerce-flash_sales-001",
    sql: `
      create table if not exists flash_sales (
        sale_id uuid primary key,
        product_id uuid not null,
        price numeric(12, 2) not null check (price > 0),
        currency char(3) not null,
        starts_at timestamptz not null,
        ends_at timestamptz not null check (ends_at > starts_at),
        -- Set, with the ended event in the outbox, by the sweeper once ends_at has passed.
        ended_at timestamptz,
        created_by text not null
      );
      create index if not exists flash_sales_by_product on flash_sales (product_id, ends_at desc);
      create index if not exists flash_sales_running on flash_sales (ends_at) where ended_at is null;
      create table if not exists flash_sale_broadcasts (
        -- The SSE event id: assigned under an advisory lock, so seq order is commit order.
        seq bigserial primary key,
        event_id uuid not null unique,
        event text not null,
        data jsonb not null,
        created_at timestamptz not null default now()
      );
    `,
  },
];
