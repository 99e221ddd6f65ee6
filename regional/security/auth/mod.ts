/**
 * @module
 * The auth (security) context: accounts, roles, access and refresh tokens, signing keys and the JWKS.
 * `createAuthModule` applies its own migrations (they are also exported for tooling), makes sure a signing
 * key exists, and returns the routes plus a verifier that reads this process's key store directly.
 */
import type { Hono } from "hono";
import { type AuthEnv, createTokenVerifier, type TokenVerifier } from "../../../shared/auth/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { migrate, type Migration } from "../../../shared/ports/sql_migrate.ts";
import { log } from "../../../shared/observability/mod.ts";
import { type ClientAddressOf, forwardedClientAddressOf } from "./client_address.ts";
import { createThrottleCounters } from "./_throttle_counters.ts";
import { createLoginThrottle, type LoginThrottleOptions, loginThrottleOptionsOf } from "./login_throttle.ts";
import { authMigrations } from "./migrations.ts";
import { createPasswordHasher, type PasswordHasher, type PasswordHasherOptions } from "./password.ts";
import { createAuthRoutes } from "./routes.ts";
import { createSigningKeyStore } from "./signing_keys.ts";
import { createSignupThrottle, type SignupThrottleOptions } from "./signup_throttle.ts";
import { createTokenService } from "./tokens.ts";
import { createUser, findUserByEmail, grantRoles, rolesOf } from "./users.ts";

export { authMigrations } from "./migrations.ts";
export {
  type ClientAddressOf,
  type ClientAddressOptions,
  createClientAddressOf,
  DEFAULT_TRUSTED_PROXIES,
  forwardedClientAddressOf,
} from "./client_address.ts";
export { LOGIN_THROTTLE_DEFAULTS, LOGIN_THROTTLED_CODE, type LoginThrottleOptions } from "./login_throttle.ts";
export { JWKS_MAX_AGE_SEC } from "./signing_keys.ts";
export { isAuthWrite, REPLICATED_AUTH_TABLES } from "./single_writer.ts";
export { SIGNUP_THROTTLE_DEFAULTS, SIGNUP_THROTTLED_CODE, type SignupThrottleOptions } from "./signup_throttle.ts";
export type { TokenPair } from "./tokens.ts";

export interface AuthModuleDeps {
  readonly sql: Sql;
  readonly issuer: string;
  readonly audience: string;
  /** @default {900} */
  readonly accessTokenTtlSec?: number;
  /** Milliseconds since the epoch. @default {Date.now} */
  readonly now?: () => number;
  /**
   * How long a new key is published before it signs (see signing_keys.ts).
   * @default {600_000}
   */
  readonly keyActivationDelayMs?: number;
  /** @default {{}} (scrypt N=2^15, r=8, p=1, two hashes at a time) */
  readonly passwordHasher?: PasswordHasherOptions;
  /** Replaces the hasher built from `passwordHasher` (tests observe the work done per login). */
  readonly passwords?: PasswordHasher;
  /** Failed-login limits per e-mail and per client address. @default {LOGIN_THROTTLE_DEFAULTS} */
  readonly loginThrottle?: LoginThrottleOptions;
  /** Sign-ups per client address (loopback not counted). @default {SIGNUP_THROTTLE_DEFAULTS} */
  readonly signupThrottle?: SignupThrottleOptions;
  /**
   * The address a login or sign-up counts against (undefined: a login per e-mail only, a sign-up not at all). Make it
   * with `createClientAddressOf` when the platform's hops run outside the default trusted ranges (the service passes
   * `BV_TRUSTED_PROXIES`; client_address.ts).
   * @default {forwardedClientAddressOf}
   */
  readonly clientAddressOf?: ClientAddressOf;
  /**
   * How long after its rotation a refresh token may be presented once more as a retry of a lost answer, answered in
   * the same family (tokens.ts); 0: every replay is reuse and revokes the family. The service passes
   * `BV_REFRESH_REUSE_GRACE_MS`.
   * @default {30_000}
   */
  readonly refreshReuseGraceMs?: number;
}

export interface AuthModule {
  readonly routes: Hono<AuthEnv>;
  readonly migrations: readonly Migration[];
  /**
   * Creates the account if absent and makes sure it holds ADMIN. An existing account keeps its password; one
   * without ADMIN is promoted only if `password` is its password (else this rejects: sign-up is open, so the
   * address may have been registered by someone else).
   */
  ensureAdmin(email: string, password: string): Promise<void>;
  /** Publishes a new signing key; it signs after the activation delay. */
  rotateSigningKey(): Promise<void>;
  /** Verifies this process's tokens without HTTP (it reads the key store, cached like a remote JWKS). */
  readonly verifier: TokenVerifier;
}

export async function createAuthModule(deps: AuthModuleDeps): Promise<AuthModule> {
  const now = deps.now ?? Date.now;
  const accessTokenTtlSec = deps.accessTokenTtlSec ?? 900;
  // Before the migrations: bad limits stop the process at setup, not at the first login.
  const loginOptions = loginThrottleOptionsOf(deps.loginThrottle);
  const counters = createThrottleCounters({ sql: deps.sql, sweepIntervalMs: loginOptions.sweepIntervalMs });
  const loginThrottle = createLoginThrottle({ counters, now, options: loginOptions });
  const signupThrottle = createSignupThrottle({ counters, now, options: deps.signupThrottle });
  await migrate(deps.sql, authMigrations);
  const keys = createSigningKeyStore({
    sql: deps.sql,
    now,
    accessTokenTtlSec,
    activationDelayMs: deps.keyActivationDelayMs,
  });
  await keys.ensureKey();
  const tokens = createTokenService({
    sql: deps.sql,
    keys,
    issuer: deps.issuer,
    audience: deps.audience,
    accessTokenTtlSec,
    refreshReuseGraceMs: deps.refreshReuseGraceMs,
    now,
  });
  // The key store caches its rows itself, so an unknown kid may reload at once (no cooldown needed).
  const verifier = createTokenVerifier({
    jwks: () => keys.jwks(),
    issuer: deps.issuer,
    audience: deps.audience,
    cacheMaxAgeMs: 5_000,
    cooldownMs: 0,
    now,
  });
  const passwords = deps.passwords ?? createPasswordHasher(deps.passwordHasher);
  const decoyPasswordHash = await passwords.hash(crypto.randomUUID());
  const routes = createAuthRoutes({
    sql: deps.sql,
    passwords,
    tokens,
    keys,
    verifier,
    now,
    decoyPasswordHash,
    loginThrottle,
    signupThrottle,
    clientAddressOf: deps.clientAddressOf ?? forwardedClientAddressOf,
  });

  async function ensureAdmin(email: string, password: string): Promise<void> {
    const normalized = email.trim().toLowerCase();
    if (password.length < 8 || password.length > 128) {
      throw new RangeError(`The admin password for "${normalized}" must be 8 to 128 characters`);
    }
    const existing = await findUserByEmail(deps.sql, normalized);
    const at = new Date(now());
    if (existing) {
      if ((await rolesOf(deps.sql, existing.id)).includes("ADMIN")) return;
      // Sign-up is open and unverified: whoever registered this address first would otherwise become ADMIN
      // under their own password the moment an operator named it. Only the holder of the configured password
      // is promoted.
      if (!(await passwords.verify(password, existing.passwordHash))) {
        throw new Error(
          `The account "${normalized}" exists without ADMIN and its password is not the configured admin password; ` +
            `refusing to make it ADMIN (grant the role by hand if it is yours, or configure another admin e-mail)`,
        );
      }
      await grantRoles(deps.sql, existing.id, ["ADMIN"], at);
      log.info("admin role granted to an existing account", { userId: existing.id, email: normalized });
      return;
    }
    const passwordHash = await passwords.hash(password);
    const id = await deps.sql.transaction((tx) =>
      createUser(tx, { email: normalized, passwordHash, roles: ["ADMIN"] }, at)
    );
    if (id) log.info("admin account created", { userId: id, email: normalized });
    // Another process created it between our read and insert: grant the role to that account.
    else await ensureAdmin(normalized, password);
  }

  return {
    routes,
    migrations: authMigrations,
    verifier,
    ensureAdmin,
    async rotateSigningKey() {
      const { kid, activatesAtMs } = await keys.rotate();
      log.info("signing key published", { kid, activatesAt: new Date(activatesAtMs).toISOString() });
    },
  };
}
