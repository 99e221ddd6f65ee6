/**
 * @module
 * Parity of the whole single-writer set (e-commerce's tables and auth's) beyond order ids: per replicated table, the row count and a digest
 * of every row (md5 of the rows' text, sorted), in both regions. Equal digests mean equal contents (stock
 * counts, cart lines, prices), which order ids alone do not show.
 */
import { withPg } from "../../shared/adapters/postgres/replication.ts";
import { type OrderDatabases, SINGLE_WRITER_TABLES } from "./order_replication.ts";

export interface TableParity {
  readonly table: string;
  readonly east: { readonly rows: number; readonly digest: string };
  readonly west: { readonly rows: number; readonly digest: string };
  readonly equal: boolean;
}

/** Every replicated table's count and digest in both regions; `equal` compares the digests. */
export async function tableParity(dbs: OrderDatabases): Promise<TableParity[]> {
  const [east, west] = await Promise.all([digests(dbs.east), digests(dbs.west)]);
  return SINGLE_WRITER_TABLES.map((table) => ({
    table,
    east: east[table],
    west: west[table],
    equal: east[table].digest === west[table].digest,
  }));
}

function digests(url: string): Promise<Record<string, { rows: number; digest: string }>> {
  return withPg(url, async (sql) => {
    const out: Record<string, { rows: number; digest: string }> = {};
    for (const table of SINGLE_WRITER_TABLES) {
      // Table names come from the frozen list above, never from input.
      const [row] = await sql.unsafe(
        `select count(*)::int as n, coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as d from ${table} t`,
      );
      out[table] = { rows: Number(row.n), digest: String(row.d) };
    }
    return out;
  });
}
