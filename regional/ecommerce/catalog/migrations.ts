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
      -- Every row written from now on is checked, and the rows already here too unless some are still
      -- inverted. Not in a replica region: logical replication applies CHECK constraints on the subscriber
      -- (only triggers are off for its apply worker), so while the writer still runs code from before this
      -- migration (a rolling deploy upgrades the replica first), one inverted row it replicates would fail the
      -- apply worker on every retry and stall every replicated table, orders included. Once the writer has run
      -- this, it refuses such rows itself. The price: a replica later promoted to writer goes without the
      -- constraint (its code writes ordered intervals); a region built fresh runs this before order_writer
      -- exists and keeps it (both regions then run this code).
      do $$
      declare
        replica boolean := false;
      begin
        -- A replica the way the order-writer guard (bv_order_writer_guard) tells it: its order_writer row names
        -- another region. No table (it is created by a later migration) or no row: a writer or standalone region.
        -- Dynamic, so the block compiles where order_writer does not exist.
        if to_regclass('order_writer') is not null then
          execute 'select exists (select 1 from order_writer where writer_region <> local_region)' into replica;
        end if;
        if replica then
          raise notice 'product_price_history_valid_range not added: this region is a replica of the order writer';
          return;
        end if;
        alter table product_price_history add constraint product_price_history_valid_range
          check (valid_to is null or valid_to >= valid_from) not valid;
        if not exists (select 1 from product_price_history where valid_to < valid_from) then
          alter table product_price_history validate constraint product_price_history_valid_range;
        end if;
      end $$;
    `,
  },
  {
    id: "ecommerce-catalog-003",
    sql: `
      -- Text search (GET /api/v1/products?q=) is name or description ILIKE '%q%': a leading wildcard rules out a
      -- b-tree, so every search that does not fill its page early read the whole table. A trigram GIN index serves
      -- ILIKE with wildcards anywhere; with one per column the planner ORs them (a BitmapOr) for the store's query.
      -- pg_trgm is in PostgreSQL's contrib package and is trusted (PostgreSQL 13+: a user with CREATE on the database
      -- may create it); the PGlite adapter loads it. It runs in a replica region too: the writer guard refuses DML
      -- on products, not DDL, and logical replication carries rows, not indexes. Not CONCURRENTLY (a migration is
      -- one transaction): the build holds off writes to products (the replication apply worker's included) until it
      -- ends.
      create extension if not exists pg_trgm;
      create index if not exists products_name_trgm on products using gin (name gin_trgm_ops);
      create index if not exists products_description_trgm on products using gin (description gin_trgm_ops);
    `,
  },
];
