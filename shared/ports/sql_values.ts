/**
 * @module
 * The one place that decides which JavaScript values the SQL port returns, so postgres.js and PGlite give
 * identical rows, and how database errors look to callers (`SqlError` with the SQLSTATE in `code`).
 *
 * | PostgreSQL            | JavaScript                                                     |
 * | --------------------- | -------------------------------------------------------------- |
 * | int2, int4, float8    | `number`                                                       |
 * | int8 (bigint)         | `string` — exact and JSON-safe; postgres.js does this already  |
 * | numeric               | `string` — exact decimal text                                  |
 * | text, uuid            | `string`                                                       |
 * | boolean               | `boolean`                                                      |
 * | timestamptz, date     | `Date`                                                         |
 * | json, jsonb           | the parsed value (`object`, array, …)                          |
 * | bytea                 | a plain `Uint8Array` (never a Node `Buffer`)                   |
 * | arrays                | arrays of the element mapping (int8[] → string[])              |
 * | NULL                  | `null`                                                         |
 */

import type { Row } from "./sql.ts";

/** PostgreSQL type OIDs whose parsing an adapter must override to follow the table above. */
export const PG_OID = Object.freeze({ INT8: 20, INT8_ARRAY: 1016 });

/** A database error, the same class on every adapter. `code` is the SQLSTATE (`"23505"` = unique violation). */
export class SqlError extends Error {
  override readonly name = "SqlError";
  constructor(
    message: string,
    readonly code: string,
    readonly detail?: { readonly constraint?: string; readonly table?: string; readonly column?: string },
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** Wraps a driver error carrying a SQLSTATE into {@linkcode SqlError}; other errors pass through unchanged. */
export function toSqlError(error: unknown): unknown {
  if (error instanceof SqlError || !(error instanceof Error)) return error;
  const e = error as Error & {
    code?: unknown;
    constraint?: string;
    constraint_name?: string;
    table?: string;
  };
  const code = e.code;
  if (typeof code !== "string" || !SQLSTATE.test(code)) return error;
  const fields = error as unknown as Record<string, string | undefined>;
  return new SqlError(error.message, code, {
    constraint: fields.constraint ?? fields.constraint_name,
    table: fields.table ?? fields.table_name,
    column: fields.column ?? fields.column_name,
  }, { cause: error });
}

/** Maps one driver value to the port's value (see the table in the module doc). */
export function normalizeValue(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) {
    // A Node Buffer is a Uint8Array subclass; a plain view over the same memory compares equal everywhere.
    return value.constructor === Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.length);
  }
  if (Array.isArray(value)) return value.map(normalizeValue);
  return value;
}

/** Copies driver rows into plain objects holding port values. */
export function normalizeRows<T extends Row>(rows: Iterable<Record<string, unknown>>): T[] {
  const out: T[] = [];
  for (const row of rows) {
    const copy: Row = {};
    for (const key of Object.keys(row)) copy[key] = normalizeValue(row[key]);
    out.push(copy as T);
  }
  return out;
}
