/**
 * @module
 * Access tokens (short-lived EdDSA JWTs) and refresh tokens (opaque, rotated on every use).
 *
 * A refresh token is 32 random bytes (base64url); only its SHA-256 is stored, with a family id shared by
 * every token descended from one sign-in. Using a token marks it used and issues the next one in the same
 * family. Presenting a used token again means two parties hold it (one of them a thief), so the whole
 * family is revoked and both must sign in again.
 *
 * One exception, the reuse grace window (`refreshReuseGraceMs`, as Okta's grace period and Auth0's reuse
 * interval): a client whose answer was lost (a dropped connection, a 504 from the edge or from a replica region
 * forwarding to the writer) presents the same token again. Within the window after its rotation, once, and only
 * while the successor that answer carried is unused, that is a retry: it is answered with a fresh pair in the same
 * family, and the lost successor is spent (marked used, with no successor of its own), so presenting it later is
 * reuse. Anything else — past the window, a second replay, a successor already used — is reuse as before.
 */
import { SignJWT } from "jose";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Sql, SqlExecutor } from "../../../shared/ports/sql.ts";
import { deleteInBatches } from "../../../shared/ports/sql_purge.ts";
import { ACCESS_TOKEN_TYPE, type Role } from "../../../shared/auth/mod.ts";
import type { SigningKey, SigningKeyStore } from "./signing_keys.ts";
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
  /**
   * How long after its rotation a refresh token may be presented once more as a retry of a lost answer (0: never;
   * every replay is reuse). An integer in 0..300000.
   * @default {30_000}
   */
  readonly refreshReuseGraceMs?: number;
  /**
   * Expired refresh tokens are deleted at most this often per process, in bounded batches, in the background of
   * a sign-in or a refresh (where this region writes auth). 0: only when `sweepExpired()` is called.
   * @default {60_000}
   */
  readonly sweepIntervalMs?: number;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
}

export interface TokenService {
  /** Starts a new refresh family for `user` (a sign-in) and returns its first pair. */
  issue(user: TokenSubject): Promise<TokenPair>;
  /**
   * Rotates `refreshToken` (or answers its one retry within the grace window); throws 401
   * `AUTH.REFRESH_TOKEN_INVALID` when it is unknown, expired, revoked or reused.
   */
  refresh(refreshToken: string): Promise<TokenPair>;
  /** Revokes every token of `refreshToken`'s family (a sign-out); an unknown or revoked token is a no-op. */
  revokeFamily(refreshToken: string): Promise<void>;
  /**
   * Deletes the refresh tokens of families whose every token is past its expiry (bounded: `DEFAULT_PURGE_BOUNDS`
   * per call); resolves how many. An expired token is refused before its use is looked at, and no live token is
   * left for a revoked row of its family to refuse.
   */
  sweepExpired(): Promise<number>;
}

/** Whom an access token speaks for. */
export interface TokenSubject {
  readonly id: string;
  readonly email: string;
  readonly roles: readonly Role[];
}

interface RefreshTokenRow {
  readonly user_id: string;
  readonly family_id: string;
  readonly expires_at: Date;
  readonly used_at: Date | null;
  readonly revoked_at: Date | null;
  /** The hash of the token its rotation (or its retry) issued; null before `security_auth_0007`. */
  readonly replaced_by: string | null;
  /** When its one retry within the grace window was answered. */
  readonly replayed_at: Date | null;
}

/** What a refresh transaction decided; a reuse must commit its revocation, so outcomes are returned, not thrown. */
type RefreshOutcome =
  | { readonly kind: "invalid" }
  | { readonly kind: "reused"; readonly userId: string; readonly familyId: string }
  | { readonly kind: "rotated"; readonly pair: TokenPair; readonly retryOf?: { userId: string; familyId: string } };

const REFRESH_TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;
/** Longer than any answer can be lost for (a forward times out after `BV_CALL_TIMEOUT_MS`, at most 120 s). */
const REFRESH_REUSE_GRACE_MS_MAX = 300_000;

export function createTokenService(options: TokenServiceOptions): TokenService {
  const { sql, keys, now, accessTokenTtlSec } = options;
  const refreshTtlMs = (options.refreshTokenTtlSec ?? 30 * 24 * 3600) * 1000;
  if (!(Number.isInteger(accessTokenTtlSec) && accessTokenTtlSec > 0 && accessTokenTtlSec <= 86_400)) {
    throw new RangeError(`accessTokenTtlSec must be an integer in 1..86400, got ${accessTokenTtlSec}`);
  }
  const graceMs = options.refreshReuseGraceMs ?? 30_000;
  const sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
  if (!(Number.isInteger(sweepIntervalMs) && sweepIntervalMs >= 0)) {
    throw new RangeError(`sweepIntervalMs must be a whole number of ms, got ${sweepIntervalMs}`);
  }
  let lastSweepMs = -Infinity;
  let sweeping = false;
  if (!(Number.isInteger(graceMs) && graceMs >= 0 && graceMs <= REFRESH_REUSE_GRACE_MS_MAX)) {
    throw new RangeError(`refreshReuseGraceMs must be an integer in 0..${REFRESH_REUSE_GRACE_MS_MAX}, got ${graceMs}`);
  }

  /** Pure crypto: no I/O, so it may run inside a transaction. */
  async function signAccessToken(key: SigningKey, user: TokenSubject): Promise<string> {
    const issuedAtSec = Math.floor(now() / 1000);
    return await new SignJWT({ email: user.email, roles: [...user.roles] })
      .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: ACCESS_TOKEN_TYPE })
      .setSubject(user.id)
      .setIssuer(options.issuer)
      .setAudience(options.audience)
      .setIssuedAt(issuedAtSec)
      .setNotBefore(issuedAtSec)
      .setExpirationTime(issuedAtSec + accessTokenTtlSec)
      .setJti(crypto.randomUUID())
      .sign(key.privateKey);
  }

  /** Stores a new token of `familyId`; resolves the token and its hash. */
  async function storeRefreshToken(
    tx: SqlExecutor,
    userId: string,
    familyId: string,
  ): Promise<{ token: string; hash: string }> {
    const token = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const hash = await sha256Hex(token);
    const at = now();
    await tx.query`
      insert into auth_refresh_tokens (token_hash, user_id, family_id, created_at, expires_at)
      values (${hash}, ${userId}, ${familyId}, ${new Date(at)}, ${new Date(at + refreshTtlMs)})`;
    return { token, hash };
  }

  /**
   * The successor a replay of used `row` may replace, or undefined when the replay is reuse: no window, past it, a
   * second replay, no successor on record (rotated before `security_auth_0007`, or spent by a retry), or a successor
   * already used. The successor's row is locked, so its own rotation cannot commit between this check and the
   * retry's write. A revocation racing it waits for the family's lock (`lockFamilyOf`).
   */
  async function replaceableSuccessor(tx: SqlExecutor, row: RefreshTokenRow, at: Date): Promise<string | undefined> {
    if (graceMs === 0 || row.used_at === null || row.replayed_at !== null || row.replaced_by === null) return undefined;
    if (at.getTime() - row.used_at.getTime() > graceMs) return undefined;
    const [successor] = await tx.query<{ used_at: Date | null; revoked_at: Date | null }>`
      select used_at, revoked_at from auth_refresh_tokens where token_hash = ${row.replaced_by} for update`;
    if (!successor || successor.used_at || successor.revoked_at) return undefined;
    return row.replaced_by;
  }

  /**
   * One rotation (or one retry within the grace window), all or nothing. The access token is signed before the
   * presented token is marked used and before the commit: if signing throws, the rollback leaves that token unused,
   * so the client's retry is a rotation again and not a reuse that would revoke the family (signing out a user by
   * our own failure). Two refreshes of one token serialise on its row lock (`for update`).
   */
  async function rotate(tx: SqlExecutor, hash: string, key: SigningKey): Promise<RefreshOutcome> {
    const at = new Date(now());
    if (!await lockFamilyOf(tx, hash)) return { kind: "invalid" };
    const [row] = await tx.query<RefreshTokenRow & Record<string, unknown>>`
      select user_id, family_id, expires_at, used_at, revoked_at, replaced_by, replayed_at from auth_refresh_tokens
      where token_hash = ${hash} for update`;
    if (!row || row.revoked_at || row.expires_at.getTime() <= at.getTime()) return { kind: "invalid" };
    if (await familyRevoked(tx, row.family_id)) return { kind: "invalid" };
    const replaced = row.used_at ? await replaceableSuccessor(tx, row, at) : undefined;
    if (row.used_at && replaced === undefined) {
      await revokeFamilyRows(tx, row.family_id, at);
      return { kind: "reused", userId: row.user_id, familyId: row.family_id };
    }
    const [user] = await tx.query<{ id: string; email: string }>`
      select id, email from auth_users where id = ${row.user_id}`;
    if (!user) return { kind: "invalid" };
    const accessToken = await signAccessToken(key, { ...user, roles: await rolesOf(tx, user.id) });
    const next = await storeRefreshToken(tx, user.id, row.family_id);
    const pair = { accessToken, refreshToken: next.token, expiresIn: accessTokenTtlSec };
    if (replaced === undefined) {
      await tx.query`
        update auth_refresh_tokens set used_at = ${at}, replaced_by = ${next.hash} where token_hash = ${hash}`;
      return { kind: "rotated", pair };
    }
    // The lost answer's successor is spent, not revoked (a revoked token revokes its family): used, with no
    // successor on record, so whoever presents it later is taken for a thief and the family is revoked.
    await tx.query`update auth_refresh_tokens set used_at = ${at} where token_hash = ${replaced}`;
    await tx.query`
      update auth_refresh_tokens set replaced_by = ${next.hash}, replayed_at = ${at} where token_hash = ${hash}`;
    return { kind: "rotated", pair, retryOf: { userId: row.user_id, familyId: row.family_id } };
  }

  async function sweepExpired(): Promise<number> {
    const at = new Date(now());
    return await deleteInBatches(async (limit) => {
      // Whole families only: a revoked row is what refuses the rest of its family (familyRevoked), and a successor
      // issued in a rotation that raced the revocation may be live and unrevoked; deleting the family's expired rows
      // first would bring it back.
      const deleted = await sql.query<{ token_hash: string }>`
        delete from auth_refresh_tokens where token_hash in (
          select t.token_hash from auth_refresh_tokens t
          where t.expires_at <= ${at}
            and not exists (
              select 1 from auth_refresh_tokens o where o.family_id = t.family_id and o.expires_at > ${at})
          order by t.expires_at limit ${limit})
        returning token_hash`;
      return deleted.length;
    });
  }

  /** Starts a sweep in the background when the last one began `sweepIntervalMs` ago and none is running. */
  function sweepWhenDue(): void {
    const at = now();
    if (sweepIntervalMs === 0 || sweeping || at - lastSweepMs < sweepIntervalMs) return;
    lastSweepMs = at;
    sweeping = true;
    sweepExpired()
      .then((deleted) => {
        if (deleted > 0) log.info("expired refresh tokens deleted", { deleted });
      })
      .catch((error) => log.warn("expired refresh tokens could not be deleted; will retry", { error: String(error) }))
      .finally(() => sweeping = false);
  }

  return {
    sweepExpired,
    async issue(user) {
      sweepWhenDue();
      const key = await keys.signingKey();
      const accessToken = await signAccessToken(key, user);
      // Stored only once the access token exists: a failed sign-in leaves no orphan family behind.
      const { token: refreshToken } = await storeRefreshToken(sql, user.id, crypto.randomUUID());
      return { accessToken, refreshToken, expiresIn: accessTokenTtlSec };
    },
    async refresh(refreshToken) {
      if (!REFRESH_TOKEN_FORMAT.test(refreshToken)) throw invalidRefreshToken();
      sweepWhenDue();
      const hash = await sha256Hex(refreshToken);
      // Fetched before the transaction: the key store may read (and promote keys in) SQL itself, which would
      // wait forever on PGlite's single connection, or on a pool drained by transactions waiting likewise.
      const key = await keys.signingKey();
      const outcome = await sql.transaction((tx) => rotate(tx, hash, key));
      if (outcome.kind === "reused") {
        log.warn("refresh token reused; family revoked", { userId: outcome.userId, familyId: outcome.familyId });
      }
      if (outcome.kind !== "rotated") throw invalidRefreshToken();
      if (outcome.retryOf) {
        log.info("refresh retried within the reuse grace window; lost successor replaced", outcome.retryOf);
      }
      return outcome.pair;
    },
    async revokeFamily(refreshToken) {
      // A token that cannot exist is simply unknown: the caller answers the same either way.
      if (!REFRESH_TOKEN_FORMAT.test(refreshToken)) return;
      const hash = await sha256Hex(refreshToken);
      const done = await sql.transaction(async (tx) => {
        if (!await lockFamilyOf(tx, hash)) return undefined;
        const [family] = await tx.query<{ family_id: string; user_id: string }>`
          select family_id, user_id from auth_refresh_tokens where token_hash = ${hash}`;
        if (!family) return undefined;
        return { ...family, revoked: await revokeFamilyRows(tx, family.family_id, new Date(now())) };
      });
      if (done && done.revoked > 0) {
        log.info("refresh token family revoked", { userId: done.user_id, familyId: done.family_id });
      }
    },
  };
}

/** The class of the per-family advisory locks (two-key form: apart from every one-key lock, the outbox relay's). */
const FAMILY_LOCK_CLASS = 0x62764652; // "bvFR"

/**
 * Takes the transaction-scoped lock of `hash`'s family; false when no such token exists. Every change to a family
 * (a rotation, its retry, a logout, a reuse revocation) takes it first, so they serialise instead of locking the
 * family's rows in different orders: a retry locks the replayed token then its successor, a revocation every row in
 * scan order, and the two had deadlocked (one aborted, its client answered 503; diff review).
 */
async function lockFamilyOf(tx: SqlExecutor, hash: string): Promise<boolean> {
  const rows = await tx.query`
    select pg_advisory_xact_lock(${FAMILY_LOCK_CLASS}::int4, hashtext(family_id::text)) from auth_refresh_tokens
    where token_hash = ${hash}`;
  return rows.length > 0;
}

/** Marks every live token of the family revoked; resolves how many were. */
async function revokeFamilyRows(tx: SqlExecutor, familyId: string, at: Date): Promise<number> {
  const rows = await tx.query`
    update auth_refresh_tokens set revoked_at = ${at} where family_id = ${familyId} and revoked_at is null
    returning 1 as revoked`;
  return rows.length;
}

/**
 * True when any token of the family is revoked. A rotation that held its token's row lock while the family
 * was being revoked inserts a successor the revoking statement never saw; this check (a fresh statement,
 * hence a fresh snapshot, after the lock) refuses that successor, so a revoked family stays revoked.
 */
async function familyRevoked(tx: SqlExecutor, familyId: string): Promise<boolean> {
  const rows = await tx.query`
    select 1 as revoked from auth_refresh_tokens where family_id = ${familyId} and revoked_at is not null limit 1`;
  return rows.length > 0;
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
