/**
 * @module
 * The PostgreSQL adapter of the SQL port (postgres.js). See README.md for semantics and failure modes.
 */
export { createPostgresSql, type PostgresSqlOptions } from "./sql.ts";
