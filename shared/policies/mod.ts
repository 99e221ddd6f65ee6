/** @module Authorization policies declared once as data and decided by pure functions. */
export * from "./ecommerce.ts";
