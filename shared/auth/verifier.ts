/**
 * @module
 * The one access-token verifier every service (and the edge worker) uses. It pins the algorithm to EdDSA,
 * requires the token type `at+jwt` (RFC 9068), checks iss, aud, exp and nbf with at most 60 s of clock
 * skew, and turns every failure into a {@linkcode ProblemError}: 401 for a bad token, 503 with `Retry-After`
 * when the keys that could prove it good are not at hand. It also says which published keys it can use
 * ({@linkcode verificationKeysOf}), for the loaders that merge several regions' key sets. Web-standard APIs
 * only: no Deno or node imports, so the same file runs in the edge worker.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  errors,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import { ProblemError } from "../contracts/problem.ts";
import { isRole, type Role } from "./roles.ts";

/** The only signing algorithm accepted. Pinning it is what defeats `alg: none` and HS256/RS256 confusion. */
export const ACCESS_TOKEN_ALGORITHMS = Object.freeze(["EdDSA"] as const);

/** The JOSE `typ` header of access tokens (RFC 9068), so an ID token or other JWT cannot pass as one. */
export const ACCESS_TOKEN_TYPE = "at+jwt";

/** The largest clock skew accepted between issuer and verifier. */
export const CLOCK_TOLERANCE_SEC_MAX = 60;

/** Tokens longer than this are refused before any parsing (ours are about 500 characters). */
export const ACCESS_TOKEN_LENGTH_MAX = 8 * 1024;

/** Who made a request, as proven by a verified access token. */
export interface Principal {
  readonly userId: string;
  readonly email: string;
  readonly roles: readonly Role[];
  /** The token's `jti`. */
  readonly tokenId: string;
  /** The token's `exp`, in seconds since the epoch. */
  readonly expiresAt: number;
}

/** A key set as a loader returns it: the keys, and the sources (regions' JWKS URLs) that never loaded. */
export interface LoadedKeySet extends JSONWebKeySet {
  /**
   * Sources none of whose keys have ever loaded: a token with a `kid` missing from `keys` may be theirs, so it
   * is answered 503 (retry later), not 401 (discard the token). A source that loaded once and then failed is
   * not listed: its last keys are in `keys`.
   * @default {[]}
   */
  readonly neverLoaded?: readonly string[];
}

export interface TokenVerifierOptions {
  /**
   * Where the public keys come from: a URL (fetched with jose's remote JWKS cache) or a function that
   * loads the set locally (for the issuing process itself, the union of regions' sets, or tests).
   */
  readonly jwks: URL | (() => Promise<LoadedKeySet>);
  readonly issuer: string;
  readonly audience: string;
  /**
   * Accepted skew for exp/nbf/iat, at most {@linkcode CLOCK_TOLERANCE_SEC_MAX}.
   * @default {60}
   */
  readonly clockToleranceSec?: number;
  /**
   * How long a fetched key set is used before it is fetched again. A key published as `next` is seen by
   * every verifier within this time, which is why the issuer waits longer than this before signing with it.
   * A local set older than this keeps answering while one reload runs in the background.
   * @default {300_000}
   */
  readonly cacheMaxAgeMs?: number;
  /**
   * After a fetch, how long a token with an unknown `kid` waits before it may trigger another fetch; this
   * bounds how often forged `kid`s can make us call the issuer. A failed reload of a local set is retried no
   * sooner either.
   * @default {30_000}
   */
  readonly cooldownMs?: number;
  /**
   * Time limit of one key-set fetch.
   * @default {5_000}
   */
  readonly timeoutMs?: number;
  /**
   * The clock, in milliseconds since the epoch (tests inject one).
   * @default {Date.now}
   */
  readonly now?: () => number;
}

export interface TokenVerifier {
  /** Verifies `token` and returns its principal; throws a 401 (or 503 keys unavailable) {@linkcode ProblemError}. */
  verify(token: string): Promise<Principal>;
}

/** Creates a verifier; options are checked here, so a misconfiguration fails at start, not per request. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const clockToleranceSec = options.clockToleranceSec ?? CLOCK_TOLERANCE_SEC_MAX;
  if (!(clockToleranceSec >= 0 && clockToleranceSec <= CLOCK_TOLERANCE_SEC_MAX)) {
    throw new RangeError(
      `clockToleranceSec must be between 0 and ${CLOCK_TOLERANCE_SEC_MAX}, got ${clockToleranceSec}`,
    );
  }
  if (!options.issuer) throw new TypeError("createTokenVerifier requires an issuer");
  if (!options.audience) throw new TypeError("createTokenVerifier requires an audience");
  const now = options.now ?? Date.now;
  const cacheMaxAgeMs = options.cacheMaxAgeMs ?? 300_000;
  const cooldownMs = options.cooldownMs ?? 30_000;
  const getKey: JWTVerifyGetKey = options.jwks instanceof URL
    ? createRemoteJWKSet(options.jwks, {
      timeoutDuration: options.timeoutMs ?? 5_000,
      cooldownDuration: cooldownMs,
      cacheMaxAge: cacheMaxAgeMs,
    })
    : cachedLocalKeySet(options.jwks, { cacheMaxAgeMs, cooldownMs, now });

  return {
    async verify(token: string): Promise<Principal> {
      if (typeof token !== "string" || token.length === 0 || token.length > ACCESS_TOKEN_LENGTH_MAX) {
        throw new ProblemError("AUTH.TOKEN_INVALID", "The access token is empty or too long");
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          algorithms: [...ACCESS_TOKEN_ALGORITHMS],
          typ: ACCESS_TOKEN_TYPE,
          issuer: options.issuer,
          audience: options.audience,
          clockTolerance: clockToleranceSec,
          currentDate: new Date(now()),
          requiredClaims: ["sub", "exp", "iat", "nbf", "jti"],
        }));
      } catch (error) {
        // jose looks the key up before it checks the claims: while a region's keys are missing, a token of that
        // region that has expired anyway would get "retry later" instead of "refresh" (its signature is never
        // checked here: the answer is a refusal either way).
        if (error instanceof SigningKeysUnavailable && expiredClaim(token, now(), clockToleranceSec)) {
          throw new ProblemError("AUTH.TOKEN_EXPIRED", "The access token has expired; refresh it and retry", {
            cause: error,
          });
        }
        throw toProblem(error);
      }
      return principalOf(payload);
    },
  };
}

/** True when `token`'s (unverified) `exp` claim lies more than the clock tolerance in the past. */
function expiredClaim(token: string, nowMs: number, clockToleranceSec: number): boolean {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === "number" && exp + clockToleranceSec < nowMs / 1000;
  } catch {
    return false;
  }
}

/** What a local key set throws when the keys that could prove a token good are not at hand. */
class SigningKeysUnavailable extends Error {
  constructor(message: string, readonly retryAfterSec: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "SigningKeysUnavailable";
  }
}

/** The only mapping from a verification failure to a problem: 503s say when to retry, 401s that the token is bad. */
function toProblem(error: unknown): ProblemError {
  if (error instanceof SigningKeysUnavailable) return keysUnavailable(error.message, error.retryAfterSec, error);
  if (error instanceof errors.JWTExpired) {
    return new ProblemError("AUTH.TOKEN_EXPIRED", "The access token has expired; refresh it and retry", {
      cause: error,
    });
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    // Our own key set could not be read: the token may be fine, so this is not the client's fault.
    return keysUnavailable("The signing keys could not be loaded; retry later", 1, error);
  }
  if (error instanceof errors.JOSEError) {
    return new ProblemError("AUTH.TOKEN_INVALID", `The access token is not valid (${error.code})`, {
      cause: error,
    });
  }
  // A failed fetch of a remote key set surfaces as a plain TypeError from fetch.
  return keysUnavailable("The signing keys could not be loaded; retry later", 1, error);
}

function keysUnavailable(detail: string, retryAfterSec: number, cause: unknown): ProblemError {
  return new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", detail, {
    headers: { "retry-after": String(retryAfterSec) },
    cause,
  });
}

function principalOf(payload: JWTPayload): Principal {
  const { sub, jti, exp, email, roles } = payload;
  if (typeof sub !== "string" || typeof jti !== "string" || typeof exp !== "number") {
    throw new ProblemError("AUTH.TOKEN_INVALID", "The access token lacks sub, jti or exp");
  }
  if (typeof email !== "string" || !Array.isArray(roles)) {
    throw new ProblemError("AUTH.TOKEN_INVALID", "The access token lacks email or roles");
  }
  // Unknown role names are dropped rather than rejected: an issuer that learns a new role before this
  // verifier is redeployed must not lock its holders out, and dropping can only take privileges away.
  return Object.freeze({
    userId: sub,
    email,
    roles: Object.freeze(roles.filter(isRole)),
    tokenId: jti,
    expiresAt: exp,
  });
}

/** The longest `kid` accepted in a published key (ours are 43-character JWK thumbprints). */
const KID_LENGTH_MAX = 256;
/** The `x` of an Ed25519 public key: 32 bytes, base64url without padding. */
const ED25519_X = /^[A-Za-z0-9_-]{43}$/;

/**
 * The entries of a published key set (`{"keys": [...]}`) this verifier can use, copied down to the members it
 * reads, and why each other entry was dropped. A usable entry is what `signing_keys.ts` publishes: a public
 * Ed25519 key (`kty: "OKP"`, `crv: "Ed25519"`, `x`) with a string `kid`, `alg` EdDSA and `use` sig when
 * present. One bad entry must not cost the others: jose refuses a whole set for one entry that is not an
 * object, and a private key in it fails every verification. Throws a TypeError when there is no `keys` array.
 */
export function verificationKeysOf(body: unknown): { readonly keys: JWK[]; readonly dropped: string[] } {
  const entries = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(entries)) throw new TypeError('The key set has no "keys" array');
  const keys: JWK[] = [];
  const dropped: string[] = [];
  entries.forEach((entry: unknown, i) => {
    const why = whyUnusable(entry);
    if (why !== undefined) dropped.push(`keys[${i}] ${why}`);
    else {
      const { kid, x, alg, use } = entry as JWK;
      keys.push({ kty: "OKP", crv: "Ed25519", x, kid, ...(alg === undefined ? {} : { alg }), ...(use ? { use } : {}) });
    }
  });
  return { keys, dropped };
}

function whyUnusable(entry: unknown): string | undefined {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    return `is not an object (${entry === null ? "null" : Array.isArray(entry) ? "array" : typeof entry})`;
  }
  const { kid, kty, crv, x, alg, use, d } = entry as Record<string, unknown>;
  if (typeof kid !== "string" || kid.length === 0 || kid.length > KID_LENGTH_MAX) {
    return `has no "kid" string of 1 to ${KID_LENGTH_MAX} characters`;
  }
  const named = `("${kid.slice(0, 64)}")`;
  if (kty !== "OKP" || crv !== "Ed25519") return `${named} is not an Ed25519 key (kty "${kty}", crv "${crv}")`;
  if (typeof x !== "string" || !ED25519_X.test(x)) return `${named} has no 32-byte base64url "x"`;
  if (alg !== undefined && alg !== "EdDSA") return `${named} is for alg "${alg}", not EdDSA`;
  if (use !== undefined && use !== "sig") return `${named} is for use "${use}", not sig`;
  if (d !== undefined) return `${named} holds a private key`;
  return undefined;
}

/**
 * A key resolver over a locally loaded set with the same policy as jose's remote one — reuse the set for
 * `cacheMaxAgeMs`, reload early on an unknown `kid` at most once per `cooldownMs` — and with three more:
 * - stale-while-revalidate: a set past its age keeps answering while one reload runs in the background, so a
 *   slow or black-holed source never holds requests; only a request with no set at all, or with an unknown
 *   `kid` after the cooldown, waits for a load (bounded by the loader's fetch timeout);
 * - stale-if-error: a reload that fails keeps the set that was there, and is not retried before `cooldownMs`;
 * - an unknown `kid` while a source never loaded (or the last reload failed) is 503, not 401: it may be that
 *   source's, and a 401 would make a well-behaved client throw away a good token.
 */
function cachedLocalKeySet(
  load: () => Promise<LoadedKeySet>,
  policy: { readonly cacheMaxAgeMs: number; readonly cooldownMs: number; readonly now: () => number },
): JWTVerifyGetKey {
  type KeySet = { readonly resolve: JWTVerifyGetKey; readonly loadedAtMs: number; readonly complete: boolean };
  let cached: KeySet | undefined;
  // When the last load ended, and whether it failed: both the cooldown and stale-if-error are about attempts.
  let attemptedAtMs = Number.NEGATIVE_INFINITY;
  let lastFailed = false;
  let loading: Promise<void> | undefined;
  const attempt = async (): Promise<void> => {
    try {
      const set = await load();
      const resolve = createLocalJWKSet({ keys: set.keys });
      cached = { resolve, loadedAtMs: policy.now(), complete: (set.neverLoaded ?? []).length === 0 };
      lastFailed = false;
    } catch (error) {
      lastFailed = true;
      throw error;
    } finally {
      attemptedAtMs = policy.now();
    }
  };
  // Concurrent requests (and the background refresh) share one load instead of stampeding the key store.
  const reload = (): Promise<void> => (loading ??= attempt().finally(() => (loading = undefined)));
  const cooldownLeftMs = () => attemptedAtMs + policy.cooldownMs - policy.now();
  const retryAfterSec = () => Math.max(1, Math.ceil(cooldownLeftMs() / 1000));

  return async (header, token) => {
    if (cached === undefined) {
      try {
        await reload();
      } catch (error) {
        throw new SigningKeysUnavailable("The signing keys could not be loaded; retry later", 1, { cause: error });
      }
    } else if (policy.now() - cached.loadedAtMs >= policy.cacheMaxAgeMs && (!lastFailed || cooldownLeftMs() <= 0)) {
      // The failure is kept for the next unknown kid to see (`lastFailed`); this request needs no answer from it.
      reload().catch(() => {});
    }
    try {
      return await cached!.resolve(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      if (cooldownLeftMs() <= 0) {
        try {
          await reload();
        } catch (reloadError) {
          throw new SigningKeysUnavailable("The signing keys could not be reloaded; retry later", retryAfterSec(), {
            cause: reloadError,
          });
        }
        return await resolveOrUnavailable(cached!, header, token);
      }
      if (!cached!.complete || lastFailed) throw unknownKidWhileIncomplete(error);
      throw error;
    }
  };

  async function resolveOrUnavailable(set: KeySet, ...args: Parameters<JWTVerifyGetKey>) {
    try {
      return await set.resolve(...args);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey && !set.complete) throw unknownKidWhileIncomplete(error);
      throw error;
    }
  }

  function unknownKidWhileIncomplete(cause: unknown): SigningKeysUnavailable {
    return new SigningKeysUnavailable(
      "The keys that could verify this token have not all been loaded; retry later",
      retryAfterSec(),
      { cause },
    );
  }
}
