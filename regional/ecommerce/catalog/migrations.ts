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
  {
    id: "ecommerce-catalog-002",
    sql: `
      -- Price changes used to stamp their rows with now(), when their transaction began, though overlapping
      -- changes take the product's row lock in any order: a row could close before it opened, and the next
      -- open before the one it replaced. Rows are written under that lock, so id order is the true order:
      -- each row now starts no earlier than the one before it, and a closed row ends where the next starts
      -- (a row whose real end is lost ends where it starts). Rows already in order are not touched.
      do $$
      begin
        with ordered as (
          select id, product_id, max(valid_from) over (partition by product_id order by id) as fixed_from
          from product_price_history
        ), repaired as (
          select id, fixed_from, lead(fixed_from) over (partition by product_id order by id) as next_from
          from ordered
        )
        update product_price_history h
        set valid_from = r.fixed_from,
            valid_to = case when h.valid_to is null then null
                            else greatest(coalesce(r.next_from, h.valid_to), r.fixed_from) end
        from repaired r
        where r.id = h.id
          and (h.valid_from <> r.fixed_from or h.valid_to <> greatest(coalesce(r.next_from, h.valid_to), r.fixed_from));
      exception when read_only_sql_transaction then
        -- A replica region (the order-writer guard refuses local writes): the writer region repairs its rows,
        -- and replication brings the repaired rows here.
        null;
      end $$;
      -- Checked for every row written from now on, replicated ones included.
      alter table product_price_history add constraint product_price_history_valid_range
        check (valid_to is null or valid_to >= valid_from) not valid;
      do $$
      begin
        -- Rows already here are checked too, unless a replica still holds inverted rows the writer's repair
        -- has not reached yet.
        if not exists (select 1 from product_price_history where valid_to < valid_from) then
          alter table product_price_history validate constraint product_price_history_valid_range;
        end if;
      end $$;
    `,
  },
];
