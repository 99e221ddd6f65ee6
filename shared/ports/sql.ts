/**
 * @module
 * The SQL port: tagged-template queries (values always travel as bind parameters) and transactions.
 * Real adapter: postgres (postgres.js); embedded adapter: PGlite. Both speak PostgreSQL.
 */

export type SqlValue = string | number | boolean | null | Date | Uint8Array | readonly unknown[] | object;

export type Row = Record<string, unknown>;

/** Something that runs queries: the database itself, or a transaction. */
export interface SqlExecutor {
  /** `` sql.query`select * from t where id = ${id}` `` — interpolations become `$n` parameters. */
  query<T extends Row = Row>(strings: TemplateStringsArray, ...values: SqlValue[]): Promise<T[]>;
  /** Runs statements with no parameters (migrations); several may be separated by semicolons. */
  exec(statements: string): Promise<void>;
}

export interface Sql extends SqlExecutor {
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Turns a tagged template into PostgreSQL text with `$1…$n` placeholders and its parameter list. */
export function toParameterized(
  strings: TemplateStringsArray,
  values: readonly SqlValue[],
): { text: string; params: SqlValue[] } {
  let text = strings[0];
  for (let i = 1; i < strings.length; i++) text += `$${i}${strings[i]}`;
  return { text, params: [...values] };
}
