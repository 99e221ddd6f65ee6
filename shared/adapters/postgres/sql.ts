/**
 * @module
 * The SQL port on PostgreSQL through postgres.js. Template values always travel as bind parameters
 * (`toParameterized` then `sql.unsafe(text, params)`); rows and errors are normalised by
 * `shared/ports/sql_values.ts` so they match the PGlite adapter.
 */

import postgres from "postgres";
import { type Row, type Sql, type SqlExecutor, type SqlValue, toParameterized } from "../../ports/sql.ts";
import { createSqlPermits, type SqlPoolBounds } from "../../ports/sql_permits.ts";
import { normalizeRows, toSqlError } from "../../ports/sql_values.ts";

/**
 * Options for {@linkcode createPostgresSql}. `acquireTimeoutMs` and `maxWaiting` ({@linkcode SqlPoolBounds})
 * bound how long and how many callers wait for one of the `maxConnections`.
 */
export interface PostgresSqlOptions extends SqlPoolBounds {
  /** `postgres://user:pass@host:port/db`. */
  readonly url: string;
  /** Pool size. @default 10 */
  readonly maxConnections?: number;
  /** Seconds to wait for a TCP connection and startup. @default 5 */
  readonly connectTimeoutSec?: number;
  /** Server-side `statement_timeout` for every connection of the pool. @default 30000 */
  readonly statementTimeoutMs?: number;
  /** Seconds an unused connection stays open. @default 30 */
  readonly idleTimeoutSec?: number;
  /**
   * Server-side `idle_in_transaction_session_timeout`: a transaction left open this long with no statement
   * running (its code awaits something that never comes) has its session ended by the server, which rolls
   * it back and frees its locks and its pooled connection. @default 60000
   */
  readonly idleInTransactionTimeoutMs?: number;
}

/** Connects lazily (on the first query) with an explicit pool size and timeouts. */
export function createPostgresSql(options: PostgresSqlOptions): Sql {
  const {
    url,
    maxConnections = 10,
    connectTimeoutSec = 5,
    statementTimeoutMs = 30_000,
    idleTimeoutSec = 30,
    idleInTransactionTimeoutMs = 60_000,
    acquireTimeoutMs,
    maxWaiting,
  } = options;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new RangeError(
      `Cannot create the Postgres pool: maxConnections is "${maxConnections}"; use 1 or more`,
    );
  }
  const client = postgres(url, {
    max: maxConnections,
    connect_timeout: connectTimeoutSec,
    idle_timeout: idleTimeoutSec,
    // Sent as startup parameters, so the server itself cancels a runaway statement and ends a transaction
    // left idle on every connection (a stuck caller cannot hold row locks and a pool slot forever).
    connection: {
      statement_timeout: statementTimeoutMs,
      idle_in_transaction_session_timeout: idleInTransactionTimeoutMs,
      application_name: "bitvelocity",
    },
    // NOTICEs (for example "relation already exists, skipping") are not errors; they would only be noise.
    onnotice: () => {},
  });
  // postgres.js queues a caller that finds every connection busy without a deadline or a bound. Every use of
  // the pool below first takes one of `maxConnections` permits, so postgres.js never has to queue, and waiting
  // is bounded here (see shared/ports/sql_permits.ts). A transaction holds its permit until it ends; its own
  // statements run on its connection and take none, so they can never wait behind it. Outer `sql` called from
  // inside `fn` does take a permit (it is another connection): with every connection held that way, it fails
  // after `acquireTimeoutMs` instead of deadlocking forever.
  const permits = createSqlPermits("PostgreSQL", maxConnections, { acquireTimeoutMs, maxWaiting });
  const pooled = executorOf(client);
  return {
    query: (strings, ...values) => permits.run(() => pooled.query(strings, ...values)),
    exec: (statements) => permits.run(() => pooled.exec(statements)),
    transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      return permits.run(() => runTransaction(client, fn));
    },
    async ping(timeoutMs: number): Promise<void> {
      await withTimeout(
        // Urgent: ahead of queued requests, so a busy pool does not read as a dead database.
        permits.run(() => client.unsafe("select 1"), timeoutMs, { urgent: true }),
        timeoutMs,
        "Postgres did not answer a ping",
      );
    },
    async close(): Promise<void> {
      // Lets running queries finish for up to 5 s, then closes the sockets. Callers still waiting for a permit
      // get one as those finish and are refused by postgres.js (CONNECTION_ENDED), or time out first.
      await client.end({ timeout: 5 });
    },
  };
}

type Driver = postgres.Sql | postgres.TransactionSql;

async function runTransaction<T>(client: postgres.Sql, fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
  // postgres.js runs a statement of an ended transaction's handle on a pooled connection, outside any
  // transaction (autocommit): code still running after a rollback (its session was ended, or a
  // statement it did not await) would write what the rollback undid. PGlite rejects such a statement;
  // so does this adapter.
  let ended = false;
  try {
    return await client.begin((tx) => fn(endedGuard(executorOf(tx), () => ended))) as T;
  } catch (error) {
    throw toSqlError(error);
  } finally {
    ended = true;
  }
}

/** `executor`, refusing every statement once `ended()` says its transaction committed or rolled back. */
function endedGuard(executor: SqlExecutor, ended: () => boolean): SqlExecutor {
  const refuse = () =>
    Promise.reject(new Error("Cannot run a statement: its transaction has already committed or rolled back"));
  return {
    query: (strings, ...values) => ended() ? refuse() : executor.query(strings, ...values),
    exec: (statements) => ended() ? refuse() : executor.exec(statements),
  };
}

function executorOf(driver: Driver): SqlExecutor {
  return {
    async query<T extends Row = Row>(strings: TemplateStringsArray, ...values: SqlValue[]): Promise<T[]> {
      const { text, params } = toParameterized(strings, values);
      try {
        // Prepared (named) statements: tagged templates repeat the same text, so the server parses and
        // plans each one once per connection (the bench measured about 2× lower p50 than unprepared).
        const rows = await driver.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true });
        return normalizeRows<T>(rows);
      } catch (error) {
        throw toSqlError(error);
      }
    },
    async exec(statements: string): Promise<void> {
      try {
        // The simple-query protocol accepts several statements separated by semicolons.
        await driver.unsafe(statements).simple();
      } catch (error) {
        throw toSqlError(error);
      }
    },
  };
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
