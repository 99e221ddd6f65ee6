/**
 * @module
 * The SQL of a migration that puts the writer guard on a service's single-writer tables: statement triggers that
 * refuse local writes (SQLSTATE 25006) while the region's `order_writer` row names another region. The row and
 * the guard function were made by e-commerce's `ecommerce-order-writer-001`; every service of a region shares the
 * database, but the services start in any order (their own processes under `start:infra`), so a service that
 * migrates first creates both here, with the same definitions, and leaves them alone when they exist. No row still
 * means a standalone region that writes everything itself.
 */

/** Safe table names only: they are spliced into DDL. */
const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Idempotent DDL: the role row and `bv_order_writer_guard()` if absent, then a guard trigger per table. */
export function writerGuardMigrationSql(tables: readonly string[]): string {
  if (tables.length === 0) throw new RangeError("Cannot guard an empty table list");
  for (const table of tables) if (!TABLE_NAME.test(table)) throw new TypeError(`Bad table name "${table}"`);
  const triggers = tables.map((table) => `
      create or replace trigger ${table}_writer_guard before insert or update or delete on ${table}
        for each statement execute function bv_order_writer_guard();`).join("");
  return `
      create table if not exists order_writer (
        singleton boolean primary key default true check (singleton),
        local_region text not null,
        writer_region text not null,
        epoch int not null default 1,
        changed_at timestamptz not null default now()
      );
      -- Created only when missing: e-commerce owns its definition, and a later change of it must not be undone by a
      -- service that happens to migrate after it.
      do $do$
      begin
        if to_regprocedure('bv_order_writer_guard()') is null then
          create function bv_order_writer_guard() returns trigger language plpgsql as $fn$
          declare
            writer text;
          begin
            select writer_region into writer from order_writer where writer_region <> local_region;
            if found then
              raise exception 'Order tables are read-only in this region: region "%" writes orders', writer
                using errcode = 'read_only_sql_transaction';
            end if;
            return null;
          end $fn$;
        end if;
      end $do$;
      ${triggers}
    `;
}
