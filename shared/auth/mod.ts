/**
 * @module
 * Authentication shared by every service and the edge worker: the access-token verifier, the Hono
 * middleware that uses it, and the role names.
 */
export * from "./roles.ts";
export * from "./verifier.ts";
export * from "./require_auth.ts";
export * from "./verified_token_cache.ts";
