/**
 * @module
 * The order-writer role of a region's database (seed 000 section 5: orders are single-writer with
 * failover promotion). One row says which region this database belongs to and which region writes orders;
 * promotion flips it. Statement triggers make the replicated order tables refuse local writes while this
 * database is a replica; logical replication's apply worker runs with `session_replication_role = replica`,
 * so ordinary triggers do not fire for it and replicated rows still arrive.
 */

/** The tables published by the writer and subscribed to by the replica (not outbox, not idempotency keys). */
export const REPLICATED_ORDER_TABLES = Object.freeze(["orders", "order_items", "order_status_history", "payments"]);

const guards = REPLICATED_ORDER_TABLES.map((table) => `
      create or replace trigger ${table}_writer_guard before insert or update or delete on ${table}
        for each statement execute function bv_order_writer_guard();`).join("");

export const orderWriterMigrations: readonly { id: string; sql: string }[] = [
  {
    id: "ecommerce-order-writer-001",
    sql: `
      -- At most one row (the primary key is the constant true). No row: a standalone region that writes its
      -- own orders (the embedded platform, a database without replication).
      create table if not exists order_writer (
        singleton boolean primary key default true check (singleton),
        local_region text not null,
        writer_region text not null,
        -- Bumped by every promotion, so a log line or a drill can tell which era a write belongs to.
        epoch int not null default 1,
        changed_at timestamptz not null default now()
      );

      create or replace function bv_order_writer_guard() returns trigger language plpgsql as $$
      declare
        writer text;
      begin
        select writer_region into writer from order_writer where writer_region <> local_region;
        if found then
          raise exception 'Order tables are read-only in this region: region "%" writes orders', writer
            using errcode = 'read_only_sql_transaction';
        end if;
        return null;
      end $$;
      ${guards}
    `,
  },
];
