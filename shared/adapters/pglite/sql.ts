/**
 * @module
 * The SQL port on PGlite (PostgreSQL compiled to WASM, in process). PGlite has one connection, so every
 * top-level query, exec and transaction runs under one lock: a transaction never sees another caller's
 * statements interleaved. The lock is a pool of one permit with the same bounds as the postgres adapter's
 * pool (`acquireTimeoutMs`, `maxWaiting`; `shared/ports/sql_permits.ts`): a caller that cannot take it in
 * time, or finds the queue full, fails with `COMMON.UPSTREAM_UNAVAILABLE` and its statement never runs. Rows
 * and errors are normalised by `shared/ports/sql_values.ts`, exactly like the postgres.js adapter.
 */

import { PGlite, type PGliteOptions, types } from "@electric-sql/pglite";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import { type Row, type Sql, type SqlExecutor, type SqlValue, toParameterized } from "../../ports/sql.ts";
import { createSqlPermits, type SqlPoolBounds } from "../../ports/sql_permits.ts";
import { normalizeRows, PG_OID, toSqlError } from "../../ports/sql_values.ts";
import { log } from "../../observability/mod.ts";
import { type ClusterTemplates, projectClusterTemplates } from "./template.ts";

/**
 * Options for {@linkcode createPgliteSql}. `acquireTimeoutMs` and `maxWaiting` ({@linkcode SqlPoolBounds})
 * bound how long and how many callers wait for the one connection.
 */
export interface PgliteSqlOptions extends SqlPoolBounds {
  /** A directory that keeps the database across restarts. @default in memory */
  readonly dataDir?: string;
  /** Where a new database's empty cluster comes from. @default the project's `.cache/pglite/` @internal */
  readonly templates?: ClusterTemplates;
}

/**
 * Boots PGlite and resolves once it accepts queries: a new database (in memory, or a `dataDir` without a cluster)
 * from the cached empty-cluster template (about 1.5 s), an existing `dataDir` as it is (about 0.6 s).
 */
export async function createPgliteSql(options: PgliteSqlOptions = {}): Promise<Sql> {
  const db = await openPglite(options.dataDir, options.templates ?? projectClusterTemplates);
  // One permit: PGlite has one connection. The queue is FIFO, as the lock it replaces was.
  const permits = createSqlPermits("PGlite", 1, {
    acquireTimeoutMs: options.acquireTimeoutMs,
    maxWaiting: options.maxWaiting,
  });
  let closed = false;
  let closing: Promise<void> | undefined;
  const guard = <T>(work: () => Promise<T>, acquireTimeoutMs?: number, urgent = false): Promise<T> => {
    if (closed) return Promise.reject(new Error("Cannot use the PGlite database: it is closed"));
    return permits.run(work, acquireTimeoutMs, { urgent });
  };
  const executor = executorOf(db);
  return {
    query: (strings, ...values) => guard(() => executor.query(strings, ...values)),
    exec: (statements) => guard(() => executor.exec(statements)),
    transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      return guard(async () => {
        try {
          return await db.transaction((tx) => fn(executorOf(tx)));
        } catch (error) {
          throw toSqlError(error);
        }
      });
    },
    async ping(timeoutMs: number): Promise<void> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`PGlite did not answer a ping within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        await Promise.race([guard(() => db.query("select 1"), timeoutMs, true), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    close(): Promise<void> {
      // Turns new callers away, waits for the work already running or queued (each queued caller runs or
      // times out), then flushes and closes the database files. Every call shares that one close, so a second
      // caller does not return before the files are flushed.
      closed = true;
      closing ??= permits.whenIdle().then(() => db.close());
      return closing;
    },
  };
}

const PARSERS = {
  // PGlite reads int8 as bigint and int8[] as (lossy) numbers; the port returns decimal strings.
  [PG_OID.INT8]: (text: string) => text,
  [PG_OID.INT8_ARRAY]: (text: string) => types.arrayParser(text, (element: string) => element, PG_OID.INT8_ARRAY),
};

/**
 * The contrib extensions a database here can `CREATE EXTENSION`, as it can on the PostgreSQL servers (their contrib
 * package), so a migration that needs one runs on both adapters. PGlite offers only those passed when it starts and
 * unpacks each then (pg_trgm's cost was lost in the noise of a 2–5 s boot on the 2-core machine), so the list holds
 * what migrations use and no more: pg_trgm, for the catalog's text-search indexes (ecommerce-catalog-003).
 */
const EXTENSIONS = { pg_trgm };

const OPTIONS: PGliteOptions = { parsers: PARSERS, extensions: EXTENSIONS };

async function openPglite(dataDir: string | undefined, templates: ClusterTemplates): Promise<PGlite> {
  if (dataDir !== undefined && await hasCluster(dataDir)) return await PGlite.create(dataDir, OPTIONS);
  const loadDataDir = await templates.get((message) => log.warn(message));
  if (loadDataDir === undefined) return await PGlite.create(dataDir, OPTIONS);
  try {
    return await PGlite.create(dataDir, { ...OPTIONS, loadDataDir });
  } catch (error) {
    log.warn("PGlite could not load the cluster template; running initdb and making a new template", {
      error: String(error),
    });
    await templates.discard();
    // The directory had no cluster before this call: what the failed load left in it is not a database.
    if (dataDir !== undefined) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    return await PGlite.create(dataDir, OPTIONS);
  }
}

/** Whether `dataDir` holds a cluster already (`initdb` writes PG_VERSION first). */
async function hasCluster(dataDir: string): Promise<boolean> {
  try {
    await Deno.stat(`${dataDir}/PG_VERSION`);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

interface PgliteDriver {
  query<T>(text: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(statements: string): Promise<unknown>;
}

function executorOf(driver: PgliteDriver): SqlExecutor {
  return {
    async query<T extends Row = Row>(strings: TemplateStringsArray, ...values: SqlValue[]): Promise<T[]> {
      const { text, params } = toParameterized(strings, values);
      try {
        const result = await driver.query<Record<string, unknown>>(text, params);
        return normalizeRows<T>(result.rows);
      } catch (error) {
        throw toSqlError(error);
      }
    },
    async exec(statements: string): Promise<void> {
      try {
        await driver.exec(statements);
      } catch (error) {
        throw toSqlError(error);
      }
    },
  };
}
