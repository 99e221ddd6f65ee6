/**
 * @module
 * The one access-token verifier every service (and the edge worker) uses. It pins the algorithm to EdDSA,
 * requires the token type `at+jwt` (RFC 9068), checks iss, aud, exp and nbf with at most 60 s of clock
 * skew, and turns every failure into a {@linkcode ProblemError} (401). Web-standard APIs only: no Deno or
 * node imports, so the same file runs in the edge worker.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
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

export interface TokenVerifierOptions {
  /**
   * Where the public keys come from: a URL (fetched with jose's remote JWKS cache) or a function that
   * loads the set locally (for the issuing process itself, or tests).
   */
  readonly jwks: URL | (() => Promise<JSONWebKeySet>);
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
   * @default {300_000}
   */
  readonly cacheMaxAgeMs?: number;
  /**
   * After a fetch, how long a token with an unknown `kid` waits before it may trigger another fetch; this
   * bounds how often forged `kid`s can make us call the issuer.
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
  /** Verifies `token` and returns its principal; throws a 401 {@linkcode ProblemError} otherwise. */
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
        throw toProblem(error);
      }
      return principalOf(payload);
    },
  };
}

function toProblem(error: unknown): ProblemError {
  if (error instanceof errors.JWTExpired) {
    return new ProblemError("AUTH.TOKEN_EXPIRED", "The access token has expired; refresh it and retry", {
      cause: error,
    });
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    // Our own key set could not be read: the token may be fine, so this is not the client's fault.
    return new ProblemError(
      "COMMON.UPSTREAM_UNAVAILABLE",
      "The signing keys could not be loaded; retry later",
      {
        cause: error,
      },
    );
  }
  if (error instanceof errors.JOSEError) {
    return new ProblemError("AUTH.TOKEN_INVALID", `The access token is not valid (${error.code})`, {
      cause: error,
    });
  }
  // A failed fetch of a remote key set surfaces as a plain TypeError from fetch.
  return new ProblemError(
    "COMMON.UPSTREAM_UNAVAILABLE",
    "The signing keys could not be loaded; retry later",
    {
      cause: error,
    },
  );
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

/**
 * A key resolver over a locally loaded set with the same policy as jose's remote one: reuse the set for
 * `cacheMaxAgeMs`, and reload early on an unknown `kid` at most once per `cooldownMs`.
 */
function cachedLocalKeySet(
  load: () => Promise<JSONWebKeySet>,
  policy: { readonly cacheMaxAgeMs: number; readonly cooldownMs: number; readonly now: () => number },
): JWTVerifyGetKey {
  let cached: { readonly resolve: JWTVerifyGetKey; readonly loadedAtMs: number } | undefined;
  let loading: Promise<void> | undefined;
  const reload = (): Promise<void> => {
    // Concurrent requests share one load instead of stampeding the key store.
    loading ??= load()
      .then((set) => {
        cached = { resolve: createLocalJWKSet(set), loadedAtMs: policy.now() };
      })
      .finally(() => {
        loading = undefined;
      });
    return loading;
  };
  return async (header, token) => {
    if (!cached || policy.now() - cached.loadedAtMs >= policy.cacheMaxAgeMs) await reload();
    try {
      return await cached!.resolve(header, token);
    } catch (error) {
      const mayReload = policy.now() - cached!.loadedAtMs >= policy.cooldownMs;
      if (!(error instanceof errors.JWKSNoMatchingKey) || !mayReload) throw error;
      await reload();
      return await cached!.resolve(header, token);
    }
  };
}
