/**
 * @module
 * Access tokens (short-lived EdDSA JWTs) and refresh tokens (opaque, rotated on every use).
 *
 * A refresh token is 32 random bytes (base64url); only its SHA-256 is stored, with a family id shared by
 * every token descended from one sign-in. Using a token marks it used and issues the next one in the same
 * family. Presenting a used token again means two parties hold it (one of them a thief), so the whole
 * family is revoked and both must sign in again.
 */
import { SignJWT } from "jose";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Sql, SqlExecutor } from "../../../shared/ports/sql.ts";
import { ACCESS_TOKEN_TYPE, type Role } from "../../../shared/auth/mod.ts";
import type { SigningKeyStore } from "./signing_keys.ts";
import { rolesOf } from "./users.ts";

/** What signup, login and refresh answer. */
export interface TokenPair {
  readonly accessToken: string;
  readonly refreshToken: string;
  /** Seconds until the access token expires. */
  readonly expiresIn: number;
}

export interface TokenServiceOptions {
  readonly sql: Sql;
  readonly keys: SigningKeyStore;
  readonly issuer: string;
  readonly audience: string;
  readonly accessTokenTtlSec: number;
  /** @default {2_592_000} (30 days) */
  readonly refreshTokenTtlSec?: number;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
}

export interface TokenService {
  /** Starts a new refresh family for `user` (a sign-in) and returns its first pair. */
  issue(
    user: { readonly id: string; readonly email: string; readonly roles: readonly Role[] },
  ): Promise<TokenPair>;
  /** Rotates `refreshToken`; throws 401 `AUTH.REFRESH_TOKEN_INVALID` when it is unknown, expired, revoked or reused. */
  refresh(refreshToken: string): Promise<TokenPair>;
}

const REFRESH_TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;

export function createTokenService(options: TokenServiceOptions): TokenService {
  const { sql, keys, now, accessTokenTtlSec } = options;
  const refreshTtlMs = (options.refreshTokenTtlSec ?? 30 * 24 * 3600) * 1000;
  if (!(Number.isInteger(accessTokenTtlSec) && accessTokenTtlSec > 0 && accessTokenTtlSec <= 86_400)) {
    throw new RangeError(`accessTokenTtlSec must be an integer in 1..86400, got ${accessTokenTtlSec}`);
  }

  async function signAccessToken(
    user: { id: string; email: string; roles: readonly Role[] },
  ): Promise<string> {
    const { kid, privateKey } = await keys.signingKey();
    const issuedAtSec = Math.floor(now() / 1000);
    return await new SignJWT({ email: user.email, roles: [...user.roles] })
      .setProtectedHeader({ alg: "EdDSA", kid, typ: ACCESS_TOKEN_TYPE })
      .setSubject(user.id)
      .setIssuer(options.issuer)
      .setAudience(options.audience)
      .setIssuedAt(issuedAtSec)
      .setNotBefore(issuedAtSec)
      .setExpirationTime(issuedAtSec + accessTokenTtlSec)
      .setJti(crypto.randomUUID())
      .sign(privateKey);
  }

  async function storeRefreshToken(tx: SqlExecutor, userId: string, familyId: string): Promise<string> {
    const token = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const at = now();
    await tx.query`
      insert into auth_refresh_tokens (token_hash, user_id, family_id, created_at, expires_at)
      values (${await sha256Hex(token)}, ${userId}, ${familyId}, ${new Date(at)}, ${new Date(
      at + refreshTtlMs,
    )})`;
    return token;
  }

  return {
    async issue(user) {
      const refreshToken = await storeRefreshToken(sql, user.id, crypto.randomUUID());
      return { accessToken: await signAccessToken(user), refreshToken, expiresIn: accessTokenTtlSec };
    },
    async refresh(refreshToken) {
      if (!REFRESH_TOKEN_FORMAT.test(refreshToken)) throw invalidRefreshToken();
      const hash = await sha256Hex(refreshToken);
      const at = new Date(now());
      // The revocation of a reused family must commit, so the transaction returns an outcome instead of throwing.
      const outcome = await sql.transaction(async (tx) => {
        const [row] = await tx.query<
          {
            user_id: string;
            family_id: string;
            expires_at: Date;
            used_at: Date | null;
            revoked_at: Date | null;
          }
        >`
          select user_id, family_id, expires_at, used_at, revoked_at from auth_refresh_tokens
          where token_hash = ${hash} for update`;
        if (!row || row.revoked_at || row.expires_at.getTime() <= at.getTime()) {
          return { kind: "invalid" } as const;
        }
        if (row.used_at) {
          await tx.query`
            update auth_refresh_tokens set revoked_at = ${at} where family_id = ${row.family_id} and revoked_at is null`;
          return { kind: "reused", userId: row.user_id, familyId: row.family_id } as const;
        }
        await tx.query`update auth_refresh_tokens set used_at = ${at} where token_hash = ${hash}`;
        const [user] = await tx.query<{ id: string; email: string }>`
          select id, email from auth_users where id = ${row.user_id}`;
        if (!user) return { kind: "invalid" } as const;
        const next = await storeRefreshToken(tx, user.id, row.family_id);
        return {
          kind: "rotated",
          user: { ...user, roles: await rolesOf(tx, user.id) },
          refreshToken: next,
        } as const;
      });
      if (outcome.kind === "reused") {
        log.warn("refresh token reused; family revoked", {
          userId: outcome.userId,
          familyId: outcome.familyId,
        });
        throw invalidRefreshToken();
      }
      if (outcome.kind === "invalid") throw invalidRefreshToken();
      return {
        accessToken: await signAccessToken(outcome.user),
        refreshToken: outcome.refreshToken,
        expiresIn: accessTokenTtlSec,
      };
    },
  };
}

function invalidRefreshToken(): ProblemError {
  // One answer for unknown, expired, revoked and reused tokens: the client's next step is the same (sign in).
  return new ProblemError("AUTH.REFRESH_TOKEN_INVALID", "The refresh token is not valid; sign in again");
}

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
