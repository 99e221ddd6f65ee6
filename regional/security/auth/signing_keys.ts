/**
 * @module
 * Ed25519 signing keys kept in SQL, and their rotation without a failed request:
 *
 * 1. `rotate()` adds a key with status `next`. It is published in the JWKS at once but does not sign.
 * 2. At `activate_after` (created + activation delay, longer than any verifier's JWKS cache) every process
 *    switches to it: the first to notice promotes it to `active` and retires the old key, in one transaction.
 * 3. A `retired` key stays in the JWKS until every token it signed has expired (TTL + skew + reload lag);
 *    its private half is wiped when it retires, so it can never sign again.
 *
 * Each process caches the rows for `reloadIntervalMs`; the switch in step 2 is decided from the cached
 * `activate_after`, so replicas switch at the same moment without coordinating.
 */
import {
  calculateJwkThumbprint,
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
} from "jose";
import { log } from "../../../shared/observability/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";

export const SIGNING_ALGORITHM = "EdDSA";

/** Clients and gateways may cache the JWKS this long (the `Cache-Control: max-age` of the endpoint). */
export const JWKS_MAX_AGE_SEC = 60;

export interface SigningKeyStoreOptions {
  readonly sql: Sql;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /**
   * How long a `next` key is published before it signs. It must exceed the longest JWKS caching of any
   * verifier (its `cacheMaxAgeMs`, 300 s by default, plus {@linkcode JWKS_MAX_AGE_SEC} plus `reloadIntervalMs`).
   * @default {600_000}
   */
  readonly activationDelayMs?: number;
  /** How long tokens live: a retired key is published for this long plus skew and reload lag. */
  readonly accessTokenTtlSec: number;
  /**
   * How long this process trusts its cached copy of the key rows.
   * @default {30_000}
   */
  readonly reloadIntervalMs?: number;
}

export interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
}

export interface SigningKeyStore {
  /** Makes sure a key can sign (creates the first one on an empty table). */
  ensureKey(): Promise<void>;
  /** The key to sign with now, promoting a due `next` key first. */
  signingKey(): Promise<SigningKey>;
  /** The public keys verifiers must know: next, active, and retired ones whose tokens may still live. */
  jwks(): Promise<JSONWebKeySet>;
  /** Publishes a new `next` key (or returns the one already pending) and when it starts signing. */
  rotate(): Promise<{ readonly kid: string; readonly activatesAtMs: number }>;
}

interface KeyRow {
  readonly kid: string;
  readonly private_jwk: string | null;
  readonly public_jwk: string;
  readonly status: "next" | "active" | "retired";
  readonly activate_after: Date;
  readonly retired_at: Date | null;
}

/** Skew allowed by verifiers (shared/auth CLOCK_TOLERANCE_SEC_MAX), kept here to size the retired grace. */
const VERIFIER_SKEW_MS = 60_000;

export function createSigningKeyStore(options: SigningKeyStoreOptions): SigningKeyStore {
  const { sql, now } = options;
  const activationDelayMs = options.activationDelayMs ?? 600_000;
  const reloadIntervalMs = options.reloadIntervalMs ?? 30_000;
  const retiredGraceMs = options.accessTokenTtlSec * 1000 + VERIFIER_SKEW_MS + reloadIntervalMs;
  if (!(activationDelayMs >= 0)) {
    throw new RangeError(`activationDelayMs must be >= 0, got ${activationDelayMs}`);
  }
  let cache: { readonly rows: readonly KeyRow[]; readonly loadedAtMs: number } | undefined;
  const privateKeys = new Map<string, CryptoKey>();

  async function rows(): Promise<readonly KeyRow[]> {
    if (cache && now() - cache.loadedAtMs < reloadIntervalMs) return cache.rows;
    try {
      const loaded = await sql.query<KeyRow & Record<string, unknown>>`
        select kid, private_jwk, public_jwk, status, activate_after, retired_at from auth_signing_keys`;
      cache = { rows: loaded, loadedAtMs: now() };
      return loaded;
    } catch (error) {
      // Stale keys beat no keys: public keys are safe to keep serving, and the JWKS (hence every verifier)
      // keeps working through a database outage. The next call tries the database again.
      if (!cache) throw error;
      log.warn("signing keys could not be reloaded; serving the cached ones", { error: String(error) });
      return cache.rows;
    }
  }

  async function insertKey(status: "next" | "active", activateAfterMs: number): Promise<string | undefined> {
    const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALGORITHM, {
      crv: "Ed25519",
      extractable: true,
    });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const publicText = JSON.stringify({ ...publicJwk, kid, alg: SIGNING_ALGORITHM, use: "sig" });
    const privateText = JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg: SIGNING_ALGORITHM });
    const at = new Date(now());
    // The partial unique indexes allow one `next` and one `active`: a concurrent insert loses quietly.
    const inserted = await sql.query<{ kid: string }>`
      insert into auth_signing_keys (kid, private_jwk, public_jwk, status, created_at, activate_after, activated_at)
      values (${kid}, ${privateText}, ${publicText}, ${status}, ${at}, ${new Date(activateAfterMs)},
              ${status === "active" ? at : null})
      on conflict do nothing
      returning kid`;
    cache = undefined;
    return inserted[0]?.kid;
  }

  async function promote(force: boolean): Promise<void> {
    const at = new Date(now());
    await sql.transaction(async (tx) => {
      const current = await tx.query<{ kid: string; status: string; activate_after: Date }>`
        select kid, status, activate_after from auth_signing_keys
        where status in ('next', 'active') for update`;
      const next = current.find((row) => row.status === "next");
      if (!next || (!force && next.activate_after.getTime() > at.getTime())) return; // another process did it
      await tx.query`
        update auth_signing_keys set status = 'retired', retired_at = ${at}, private_jwk = null
        where status = 'active'`;
      await tx
        .query`update auth_signing_keys set status = 'active', activated_at = ${at} where kid = ${next.kid}`;
      await tx.query`
        delete from auth_signing_keys
        where status = 'retired' and retired_at < ${new Date(at.getTime() - retiredGraceMs)}`;
    });
    cache = undefined;
  }

  async function privateKeyOf(row: KeyRow): Promise<CryptoKey> {
    let key = privateKeys.get(row.kid);
    if (!key) {
      if (!row.private_jwk) throw new Error(`Signing key "${row.kid}" has no private half`);
      key = await importJWK(JSON.parse(row.private_jwk) as JWK, SIGNING_ALGORITHM) as CryptoKey;
      privateKeys.set(row.kid, key);
    }
    return key;
  }

  return {
    async ensureKey() {
      const current = await rows();
      if (current.some((row) => row.status === "active")) return;
      if (current.some((row) => row.status === "next")) {
        // No token has been signed yet, so no verifier can be holding a stale set that lacks `next`.
        await promote(true);
      } else {
        await insertKey("active", now());
      }
    },
    async signingKey() {
      let current = await rows();
      const next = current.find((row) => row.status === "next");
      const dueNext = next && next.activate_after.getTime() <= now();
      if (dueNext) {
        await promote(false);
        current = await rows();
      }
      let active = current.find((row) => row.status === "active");
      if (!active) {
        await this.ensureKey();
        active = (await rows()).find((row) => row.status === "active");
      }
      if (!active) throw new Error("No active signing key after ensureKey(); the key table is inconsistent");
      return { kid: active.kid, privateKey: await privateKeyOf(active) };
    },
    async jwks() {
      const oldestLiveRetirementMs = now() - retiredGraceMs;
      const keys = (await rows())
        .filter((row) => row.status !== "retired" || (row.retired_at?.getTime() ?? 0) > oldestLiveRetirementMs)
        .map((row) => JSON.parse(row.public_jwk) as JWK);
      return { keys };
    },
    async rotate() {
      const activatesAtMs = now() + activationDelayMs;
      const kid = await insertKey("next", activatesAtMs);
      if (kid) return { kid, activatesAtMs };
      const pending = (await rows()).find((row) => row.status === "next");
      if (!pending) throw new Error("A rotation conflicted but no pending key was found; retry");
      return { kid: pending.kid, activatesAtMs: pending.activate_after.getTime() };
    },
  };
}
