/**
 * @module
 * JWT pre-auth at the edge: the shared access-token verifier (EdDSA only, `at+jwt`, iss/aud/exp/nbf) over
 * the union of every region's JWKS. Keys are cached, refreshed in the background once stale, and reloaded
 * early on an unknown `kid` (at most once per cooldown); a region that stops answering keeps its last keys,
 * and while a region's keys have never loaded an unknown `kid` is a 503 (it may be that region's), not a
 * 401. A bad token is answered here, before any regional call. Where the caller allows it (browser
 * WebSocket and EventSource paths, whose APIs cannot set headers), the token may come as the
 * `access_token` query parameter instead; the header wins when both are sent, as at the regions
 * (`regional/ecommerce/notifications/routes.ts`).
 */
import type { JWK } from "jose";
import { ProblemError } from "../shared/contracts/problem.ts";
// The file itself, not shared/auth/mod.ts: the module door also exports node-only code.
import { createTokenVerifier, type LoadedKeySet, type Principal, verificationKeysOf } from "../shared/auth/verifier.ts";
import { edgeProblem } from "./edge_problem.ts";

export interface PreAuthOptions {
  /** Every region's `/.well-known/jwks.json`; a token signed by a key of any of them is accepted. */
  readonly jwksUrls: readonly string[];
  readonly issuer: string;
  readonly audience: string;
  /** Bound on one JWKS fetch. @default 2000 */
  readonly jwksTimeoutMs?: number;
  /** How long a loaded key set is used before it is loaded again. @default 300_000 */
  readonly jwksCacheMaxAgeMs?: number;
  /** Least time between two loads triggered by unknown `kid`s. @default 30_000 */
  readonly jwksCooldownMs?: number;
  readonly now: () => number;
  readonly fetch: typeof fetch;
  /**
   * Where a region's key set with unusable entries is reported (the entries are dropped, the rest is used).
   * @default one JSON line on stderr, shaped like the project's logger's
   */
  readonly warn?: (msg: string, fields: Record<string, unknown>) => void;
}

/** Without a `warn`: one JSON line on stderr, shaped like the project's logger's lines. */
const CONSOLE_WARN = (msg: string, fields: Record<string, unknown>) =>
  console.error(JSON.stringify({ time: new Date().toISOString(), level: "warn", service: "edge", msg, ...fields }));

export interface PreAuth {
  /**
   * The principal of the request's bearer token, undefined when there is none and none is required, or a
   * 401 (bad or missing token) / 503 (keys unavailable) problem response to send instead. With
   * `queryTokenAllowed`, a request without an Authorization header may carry its token as `access_token`.
   */
  authenticate(
    request: Request,
    required: boolean,
    queryTokenAllowed?: boolean,
  ): Promise<Principal | undefined | Response>;
}

const BEARER = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)$/i;
/** Largest JWKS accepted: ours is a few hundred bytes per key. */
const JWKS_BYTES_MAX = 64 * 1024;
/** Dropped key-set entries named in one warning (the rest are counted). */
const DROPPED_LOGGED_MAX = 5;
const CHALLENGE = 'Bearer realm="bitvelocity"';
const CHALLENGE_INVALID = 'Bearer realm="bitvelocity", error="invalid_token"';
const QUERY_TOKEN = "access_token";
const SEND_HEADER = 'Send an access token as "Authorization: Bearer <token>"';
const SEND_HEADER_OR_QUERY = `${SEND_HEADER} or as the "${QUERY_TOKEN}" query parameter`;

/** The `access_token` query parameter of `url`, or null; the URL is parsed only when it may hold one. */
function queryTokenOf(url: string): string | null {
  if (!url.includes(`${QUERY_TOKEN}=`)) return null;
  return new URL(url).searchParams.get(QUERY_TOKEN) || null;
}

/** Creates the pre-auth step; options are checked here so a misconfiguration fails at start. */
export function createPreAuth(options: PreAuthOptions): PreAuth {
  if (options.jwksUrls.length === 0) throw new TypeError("Edge auth requires at least one JWKS URL in jwksUrls");
  for (const url of options.jwksUrls) new URL(url);
  const verifier = createTokenVerifier({
    jwks: jwksUnionLoader(options),
    issuer: options.issuer,
    audience: options.audience,
    cacheMaxAgeMs: options.jwksCacheMaxAgeMs ?? 300_000,
    cooldownMs: options.jwksCooldownMs ?? 30_000,
    now: options.now,
  });
  return {
    async authenticate(request, required, queryTokenAllowed = false) {
      const header = request.headers.get("authorization");
      let token: string;
      if (header !== null) {
        const match = BEARER.exec(header);
        if (match === null) {
          return edgeProblem(
            "AUTH.TOKEN_INVALID",
            'The Authorization header is not "Bearer <token>"; send an access token or no header',
            { "www-authenticate": CHALLENGE_INVALID },
          );
        }
        token = match[1];
      } else {
        const fromQuery = queryTokenAllowed ? queryTokenOf(request.url) : null;
        if (fromQuery === null) {
          if (!required) return undefined;
          return edgeProblem("AUTH.UNAUTHENTICATED", queryTokenAllowed ? SEND_HEADER_OR_QUERY : SEND_HEADER, {
            "www-authenticate": CHALLENGE,
          });
        }
        token = fromQuery;
      }
      try {
        return await verifier.verify(token);
      } catch (error) {
        if (!(error instanceof ProblemError)) throw error;
        // A 503 (keys unavailable) carries the verifier's Retry-After.
        const headers = error.status === 401 ? { "www-authenticate": CHALLENGE_INVALID } : error.headers;
        return edgeProblem(error.code, error.message, headers);
      }
    },
  };
}

/**
 * Loads every URL at once and merges their keys by `kid`. Each URL's last good set is kept while that URL
 * fails, so a region that is down (a failover, a DR drill) does not take its still-valid tokens with it; the
 * URLs that never loaded are named in `neverLoaded`, so the verifier answers their tokens 503, not 401.
 */
function jwksUnionLoader(options: PreAuthOptions): () => Promise<LoadedKeySet> {
  const timeoutMs = options.jwksTimeoutMs ?? 2_000;
  const warn = options.warn ?? CONSOLE_WARN;
  const lastGoodByUrl = new Map<string, JWK[]>();
  async function load(url: string): Promise<JWK[]> {
    const response = await options.fetch(url, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!response.ok || Number(response.headers.get("content-length") ?? "0") > JWKS_BYTES_MAX) {
      await response.body?.cancel();
      throw new Error(`${url} answered ${response.status}`);
    }
    const text = await readTextBounded(response, JWKS_BYTES_MAX);
    if (text === undefined) throw new Error(`${url} sent a key set over ${JWKS_BYTES_MAX} bytes`);
    const { keys, dropped } = keySetOf(url, text);
    if (dropped.length > 0) {
      warn("A region's key set has entries that cannot verify tokens; they are ignored", {
        url,
        dropped: dropped.slice(0, DROPPED_LOGGED_MAX),
        droppedCount: dropped.length,
      });
    }
    // A set of nothing but bad entries is a broken answer, not a region without keys: keep its last good set.
    if (keys.length === 0 && dropped.length > 0) throw new Error(`${url} sent no usable key`);
    return keys;
  }
  return async () => {
    const results = await Promise.allSettled(options.jwksUrls.map(load));
    const failures: string[] = [];
    results.forEach((result, i) => {
      if (result.status === "rejected") failures.push(String((result.reason as Error)?.message ?? result.reason));
      else lastGoodByUrl.set(options.jwksUrls[i], result.value);
    });
    if (lastGoodByUrl.size === 0) throw new Error(`No JWKS could be loaded: ${failures.join("; ")}`);
    const byKid = new Map<string, JWK>();
    // Stale keys of an unreachable region beat refusing its tokens; a rotated-out key still expires with
    // its tokens (15 min), and the region drops it from its own set the next time it answers.
    for (const url of options.jwksUrls) for (const key of lastGoodByUrl.get(url) ?? []) byKid.set(`${key.kid}`, key);
    return { keys: [...byKid.values()], neverLoaded: options.jwksUrls.filter((url) => !lastGoodByUrl.has(url)) };
  };
}

/** The usable keys of a region's JWKS text (`verificationKeysOf`); throws, naming `url`, when it is no key set. */
function keySetOf(url: string, text: string): ReturnType<typeof verificationKeysOf> {
  try {
    return verificationKeysOf(JSON.parse(text));
  } catch (error) {
    throw new Error(`${url} sent no key set: ${(error as Error).message}`, { cause: error });
  }
}

/** The body as text, or undefined once it passes `bytesMax` (a body without content-length is bounded too). */
async function readTextBounded(response: Response, bytesMax: number): Promise<string | undefined> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > bytesMax) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(bytes);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}
