/**
 * @module
 * The order-writer role of a region's database (seed 000 section 5: orders are single-writer with
 * failover promotion). One row says which region this database belongs to and which region writes orders;
 * promotion flips it. Statement triggers make the replicated order tables refuse local writes while this
 * database is a replica (the order tables, and since migration 002 catalog, inventory, carts and idempotency
 * keys; the webhook tables are guarded by the webhooks' own migration 003, which runs after their tables exist);
 * logical replication's apply worker runs with `session_replication_role = replica`, so ordinary triggers do not
 * fire for it and replicated rows still arrive.
 */
import { REPLICATED_WEBHOOK_TABLES } from "../../webhooks/migrations.ts";

/** The order tables (the first replicated set; their row counts are the drill's RPO measure). */
export const REPLICATED_ORDER_TABLES = Object.freeze(["orders", "order_items", "order_status_history", "payments"]);

/**
 * Everything else the writer region authors (seed 000 section 5: the catalog's authoring region with CDC
 * to the other): catalog, inventory (stock, ledger, reservations) and carts, because an order forwarded to
 * the writer reads them there; and idempotency keys, so a client retrying an acknowledged order's key after
 * a failover gets the stored answer from the promoted region instead of a second order. Parents first.
 */
export const REPLICATED_COMMERCE_TABLES = Object.freeze([
  "products",
  "product_price_history",
  "inventory_stock",
  "inventory_adjustment",
  "inventory_reservation_requests",
  "inventory_reservations",
  "carts",
  "cart_items",
  "idempotency_keys",
]);

/**
 * The whole single-writer set: published by the writer, subscribed to by the replica, guarded there. The partner
 * webhook tables (`REPLICATED_WEBHOOK_TABLES`) are in it: only the writer's outbox publishes the events they are for.
 */
export const REPLICATED_TABLES = Object.freeze([
  ...REPLICATED_ORDER_TABLES,
  ...REPLICATED_COMMERCE_TABLES,
  ...REPLICATED_WEBHOOK_TABLES,
]);

const guardsOn = (tables: readonly string[]) =>
  tables.map((table) => `
      create or replace trigger ${table}_writer_guard before insert or update or delete on ${table}
        for each statement execute function bv_order_writer_guard();`).join("");

const guards = guardsOn(REPLICATED_ORDER_TABLES);

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
  {
    id: "ecommerce-order-writer-002",
    // The same guard (its message names orders: the role row is still called order_writer).
    sql: guardsOn(REPLICATED_COMMERCE_TABLES),
  },
];
