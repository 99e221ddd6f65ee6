/**
 * @module
 * The embedded adapter of the SQL port (PGlite). See README.md for semantics and failure modes.
 */
export { createPgliteSql, type PgliteSqlOptions } from "./sql.ts";
