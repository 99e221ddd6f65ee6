/**
 * @module
 * Which region writes the single-writer tables (orders, catalog, inventory, carts, and the auth tables), read
 * from the region's own `order_writer` row and cached briefly so the check costs nothing per request. The row is
 * data, so a promotion (`scripts/dr_drill.ts`) flips it without a deploy; every process sees the flip within
 * `cacheMs`. The row keeps its name (`order_writer`): it was made for orders and is shared by every service of a
 * region, as the region's database is.
 */
import type { Sql } from "../../../shared/ports/mod.ts";

export interface WriterRole {
  /** The region this database belongs to. */
  readonly localRegion: string;
  /** The region that writes orders; equal to `localRegion` on the writer. */
  readonly writerRegion: string;
  readonly epoch: number;
}

export interface WriterRoleReader {
  /** The current role, or undefined for a standalone region (no row: it writes its own orders). */
  current(): Promise<WriterRole | undefined>;
}

/** Reads the row at most once per `cacheMs` (concurrent callers share one read). @default cacheMs 500 */
export function createWriterRoleReader(sql: Sql, options: { readonly cacheMs?: number } = {}): WriterRoleReader {
  const cacheMs = options.cacheMs ?? 500;
  if (!(cacheMs >= 0)) throw new RangeError(`cacheMs must be 0 or more, got ${cacheMs}`);
  let cached: { readonly role: WriterRole | undefined; readonly atMs: number } | undefined;
  let reading: Promise<WriterRole | undefined> | undefined;
  return {
    current() {
      if (cached && performance.now() - cached.atMs < cacheMs) return Promise.resolve(cached.role);
      reading ??= sql.query<{ local_region: string; writer_region: string; epoch: number }>`
        select local_region, writer_region, epoch from order_writer`
        .then((rows) => {
          const role = rows[0]
            ? { localRegion: rows[0].local_region, writerRegion: rows[0].writer_region, epoch: Number(rows[0].epoch) }
            : undefined;
          cached = { role, atMs: performance.now() };
          return role;
        })
        .finally(() => {
          reading = undefined;
        });
      return reading;
    },
  };
}
