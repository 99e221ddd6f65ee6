/**
 * @module
 * Auth follows the region's single writer (the `order_writer` row, `regional/wiring/writer`): accounts, roles,
 * refresh tokens and login/sign-up counters are written in the writer region only and reach the other region by the
 * same logical replication as orders, so a logout revokes the session everywhere, a failover keeps every account,
 * and an e-mail has one account. Signing keys stay per region (each region's JWKS is trusted by the edge and by
 * every service), so `auth_signing_keys` is neither replicated nor guarded, and key rotation stays local.
 */

/** The replicated, guarded auth tables, parents first (roles and refresh tokens reference users). */
export const REPLICATED_AUTH_TABLES = Object.freeze([
  "auth_users",
  "auth_user_roles",
  "auth_refresh_tokens",
  "auth_login_failures",
]);

/** Every auth route that writes those tables (login writes refresh tokens and failure counts; sign-up counts too). */
const AUTH_WRITE_PATHS: readonly RegExp[] = [
  /^\/api\/v1\/auth\/(?:signup|login|refresh|logout)\/?$/,
  /^\/api\/v1\/auth\/users\/[^/]+\/roles\/?$/,
];

/** True for the auth writes a replica region forwards to the writer; reads and key rotation (per region) are not. */
export function isAuthWrite(method: string, pathname: string): boolean {
  return method === "POST" && AUTH_WRITE_PATHS.some((path) => path.test(pathname));
}
