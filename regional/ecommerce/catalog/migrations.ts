/** @module Tables of the catalog: products and their SCD2 price history (seed 003 section 5). */

export const catalogMigrations: readonly { id: string; sql: string }[] = [
  {
    id: "ecommerce-catalog-001",
    sql: `
      create table if not exists products (
        id uuid primary key,
        sku text not null unique,
        name text not null,
        description text not null default '',
        category text not null,
        price numeric(12, 2) not null check (price > 0),
        currency char(3) not null,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        version int not null default 1
      );
      create index if not exists products_category on products (category, sku);
      create table if not exists product_price_history (
        id bigserial primary key,
        product_id uuid not null references products (id),
        price numeric(12, 2) not null,
        currency char(3) not null,
        valid_from timestamptz not null,
        -- null marks the current row; closing it and opening the next share one transaction.
        valid_to timestamptz,
        changed_by text not null
      );
      -- At most one current price per product, whatever the application does.
      create unique index if not exists product_price_history_current
        on product_price_history (product_id) where valid_to is null;
      create index if not exists product_price_history_by_product
        on product_price_history (product_id, valid_from desc);
    `,
  },
];
