/**
 * @module
 * The key set a regional service verifies access tokens with: the union of every region's JWKS (seed 000
 * section 5: tokens are valid in every region). Each region's last good keys are kept per region, so a
 * region that goes down (the DR drill) does not take its users' still-valid tokens with it; the sets are
 * refreshed in the background, so they are known before the first token of the other region arrives. The
 * regions whose keys never loaded are named (`neverLoaded`): the verifier answers a token with a `kid` it
 * does not hold 503 while there are any, since the token may be theirs. Entries that cannot verify a token
 * (not an object, not a public Ed25519 key) are dropped with a warning, so one region's bad entry costs
 * nobody else's tokens.
 */
import type { JWK } from "jose";
import { type LoadedKeySet, verificationKeysOf } from "../../shared/auth/verifier.ts";
import { log } from "../../shared/observability/mod.ts";

export interface JwksUnionOptions {
  /** Every region's `/.well-known/jwks.json`. */
  readonly urls: readonly string[];
  /** Bound on one fetch. @default 2000 */
  readonly timeoutMs?: number;
  /** Background refresh period; 0 turns it off. @default 60000 */
  readonly refreshMs?: number;
}

export interface JwksUnion {
  /**
   * The union of the last good key set of every region, with the regions never loaded in `neverLoaded`;
   * rejects only when no region was ever loaded.
   */
  load(): Promise<LoadedKeySet>;
  stop(): void;
}

/** A region's key set is a few hundred bytes per key. */
const JWKS_BYTES_MAX = 64 * 1024;
/** Dropped key-set entries named in one warning (the rest are counted). */
const DROPPED_LOGGED_MAX = 5;

export function createJwksUnion(options: JwksUnionOptions): JwksUnion {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const refreshMs = options.refreshMs ?? 60_000;
  const lastGood = new Map<string, JWK[]>();
  async function fetchOne(url: string): Promise<void> {
    const response = await fetch(url, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    if (!response.ok || text.length > JWKS_BYTES_MAX) throw new Error(`${url} answered ${response.status}`);
    let usable: ReturnType<typeof verificationKeysOf>;
    try {
      usable = verificationKeysOf(JSON.parse(text));
    } catch (error) {
      throw new Error(`${url} sent no key set: ${(error as Error).message}`, { cause: error });
    }
    const { keys, dropped } = usable;
    if (dropped.length > 0) {
      log.warn("A region's key set has entries that cannot verify tokens; they are ignored", {
        url,
        dropped: dropped.slice(0, DROPPED_LOGGED_MAX),
        droppedCount: dropped.length,
      });
    }
    // A set of nothing but bad entries is a broken answer, not a region without keys: keep its last good set.
    if (keys.length === 0 && dropped.length > 0) throw new Error(`${url} sent no usable key`);
    lastGood.set(url, keys);
  }
  async function loadAll(): Promise<LoadedKeySet> {
    const results = await Promise.allSettled(options.urls.map(fetchOne));
    if (lastGood.size === 0) {
      const reasons = results.map((r) => (r.status === "rejected" ? String(r.reason) : "ok"));
      throw new Error(`No region's JWKS could be loaded: ${reasons.join("; ")}`);
    }
    const byKid = new Map<string, JWK>();
    for (const keys of lastGood.values()) for (const key of keys) byKid.set(`${key.kid}`, key);
    return { keys: [...byKid.values()], neverLoaded: options.urls.filter((url) => !lastGood.has(url)) };
  }
  // The verifier, the periodic refresh and the first-load retries share one round of fetches at a time.
  let loading: Promise<LoadedKeySet> | undefined;
  const load = () => (loading ??= loadAll().finally(() => (loading = undefined)));
  const timer = refreshMs > 0 ? setInterval(() => void load().catch(() => {}), refreshMs) : undefined;
  if (timer !== undefined) Deno.unrefTimer(timer);
  // The first load: at start the other region's auth service may not be up yet, so retry a few times soon.
  let warmups = 0;
  let stopped = false;
  let warmTimer: ReturnType<typeof setTimeout> | undefined;
  const warm = () => {
    void load().catch(() => {}).finally(() => {
      if (stopped || lastGood.size >= options.urls.length || ++warmups >= 12) return;
      warmTimer = setTimeout(warm, 5_000);
      Deno.unrefTimer(warmTimer);
    });
  };
  warm();
  return {
    load,
    stop: () => {
      stopped = true;
      clearInterval(timer);
      clearTimeout(warmTimer);
    },
  };
}
