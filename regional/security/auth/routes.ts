/**
 * @module
 * The auth HTTP API (see README.md): sign-up, login, refresh, logout, role grants, key rotation and the JWKS.
 * Every failure answers `application/problem+json`.
 */
import { Hono } from "hono";
import { z } from "zod";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { installProblemHandlers, readJson } from "../../../shared/http/mod.ts";
import { type AuthEnv, requireAuth, ROLES, RoleSchema, type TokenVerifier } from "../../../shared/auth/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import type { ClientAddressOf } from "./client_address.ts";
import type { LoginThrottle } from "./login_throttle.ts";
import type { PasswordHasher } from "./password.ts";
import type { SignupThrottle } from "./signup_throttle.ts";
import { JWKS_MAX_AGE_SEC, type SigningKeyStore } from "./signing_keys.ts";
import type { TokenService } from "./tokens.ts";
import { createUser, findUserByEmail, grantRoles, rolesOf, userExists } from "./users.ts";

export interface AuthRoutesDeps {
  readonly sql: Sql;
  readonly passwords: PasswordHasher;
  readonly tokens: TokenService;
  readonly keys: SigningKeyStore;
  readonly verifier: TokenVerifier;
  readonly now: () => number;
  /** A hash of a random password, verified when the e-mail is unknown so both failures take as long. */
  readonly decoyPasswordHash: string;
  /** Failed-login limits, checked before any hashing. */
  readonly loginThrottle: LoginThrottle;
  /** Sign-ups per client address, checked before any hashing. */
  readonly signupThrottle: SignupThrottle;
  /** The address a login or sign-up counts against; undefined counts a login per e-mail only, a sign-up not at all. */
  readonly clientAddressOf: ClientAddressOf;
}

const Email = z.string().max(254).trim().toLowerCase().pipe(z.email());
const SignupBody = z.strictObject({ email: Email, password: z.string().min(8).max(128) });
// Login accepts any length up to the maximum: a too-short guess is just a wrong password.
const LoginBody = z.strictObject({ email: Email, password: z.string().min(1).max(128) });
const RefreshTokenBody = z.strictObject({ refreshToken: z.string().min(1).max(128) });
const GrantRolesBody = z.strictObject({ roles: z.array(RoleSchema).min(1).max(ROLES.length) });

/** Token responses must not be cached anywhere (RFC 6749 §5.1). */
const NO_STORE = { "cache-control": "no-store" } as const;

export function createAuthRoutes(deps: AuthRoutesDeps): Hono<AuthEnv> {
  const { sql, passwords, tokens, keys, now } = deps;
  const app = new Hono<AuthEnv>();
  installProblemHandlers(app as unknown as Hono);
  const adminOnly = requireAuth(deps.verifier, { roles: ["ADMIN"] });

  app.post("/api/v1/auth/signup", async (c) => {
    const body = await readJson(c, SignupBody);
    const address = deps.clientAddressOf(c.req.raw, c.env);
    const id = await deps.signupThrottle.attempt(address, async () => {
      const passwordHash = await passwords.hash(body.password);
      return await sql.transaction((tx) =>
        createUser(tx, { email: body.email, passwordHash, roles: ["CUSTOMER"] }, new Date(now()))
      );
    });
    if (!id) {
      throw new ProblemError(
        "AUTH.EMAIL_TAKEN",
        `An account for "${body.email}" exists already; log in instead`,
      );
    }
    return c.json(await tokens.issue({ id, email: body.email, roles: ["CUSTOMER"] }), 201, NO_STORE);
  });

  app.post("/api/v1/auth/login", async (c) => {
    const body = await readJson(c, LoginBody);
    const address = deps.clientAddressOf(c.req.raw, c.env);
    const user = await deps.loginThrottle.attempt({ email: body.email, address }, async () => {
      const found = await findUserByEmail(sql, body.email);
      const matches = await passwords.verify(body.password, found?.passwordHash ?? deps.decoyPasswordHash);
      return found && matches ? found : undefined;
    });
    if (!user) {
      throw new ProblemError("AUTH.INVALID_CREDENTIALS", "The e-mail or password is wrong");
    }
    const roles = await rolesOf(sql, user.id);
    return c.json(await tokens.issue({ id: user.id, email: user.email, roles }), 200, NO_STORE);
  });

  app.post("/api/v1/auth/refresh", async (c) => {
    const body = await readJson(c, RefreshTokenBody);
    return c.json(await tokens.refresh(body.refreshToken), 200, NO_STORE);
  });

  // The refresh token is the credential here, not an access token: a client whose access token has expired
  // must still be able to sign out.
  app.post("/api/v1/auth/logout", async (c) => {
    const body = await readJson(c, RefreshTokenBody);
    await tokens.revokeFamily(body.refreshToken);
    // 204 whether the token was live, used, revoked or unknown: the answer must not tell a guesser which exist.
    return c.body(null, 204);
  });

  app.post("/api/v1/auth/users/:id/roles", adminOnly, async (c) => {
    const body = await readJson(c, GrantRolesBody);
    const userId = c.req.param("id");
    const roles = await sql.transaction(async (tx) => {
      if (!(await userExists(tx, userId))) return undefined;
      await grantRoles(tx, userId, body.roles, new Date(now()));
      return await rolesOf(tx, userId);
    });
    if (!roles) throw new ProblemError("AUTH.USER_NOT_FOUND", `No user with id "${userId}"`);
    // Roles reach the user's access tokens at their next refresh or login.
    return c.json({ userId, roles }, 200);
  });

  app.post("/api/v1/auth/keys/rotate", adminOnly, async (c) => {
    const { kid, activatesAtMs } = await keys.rotate();
    return c.json({ kid, activatesAt: new Date(activatesAtMs).toISOString() }, 202);
  });

  app.get("/.well-known/jwks.json", async (c) => {
    // Short max-age: a `next` key must reach every cache well before it signs (see signing_keys.ts).
    return c.json(await keys.jwks(), 200, { "cache-control": `public, max-age=${JWKS_MAX_AGE_SEC}` });
  });

  return app;
}
