/** @module Tables of the cart context (seed 003 section 5); they run after the catalog's. */

export const cartMigrations: readonly { id: string; sql: string }[] = [
  {
    id: "ecommerce-cart-001",
    sql: `
      create table if not exists carts (
        id uuid primary key,
        user_id text not null,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      );
      create index if not exists carts_by_user on carts (user_id);
      -- product_id has no foreign key to products: the cart checks products through the catalog's reads,
      -- so the contexts can move to separate databases without a schema change (products are never deleted).
      create table if not exists cart_items (
        cart_id uuid not null references carts (id) on delete cascade,
        product_id uuid not null,
        qty int not null check (qty between 1 and 1000),
        added_at timestamptz not null default now(),
        primary key (cart_id, product_id)
      );
    `,
  },
];
