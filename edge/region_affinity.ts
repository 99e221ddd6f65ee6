/**
 * @module
 * Client→region affinity for HTTP: once the edge has sent a client to a region, the client's later
 * requests go there too while that region is healthy, whatever the latency EWMA says meanwhile. Without it
 * the per-request choice flips between regions under load, and a client that wrote in east reads from west
 * before replication arrives (6–135 ms): a stale answer or a 404. DNS-based GSLB gives the same property
 * for its TTL; here the TTL slides (every request renews it), so an active client never moves for latency.
 *
 * Rules, in order (the hint is handled by the caller, see `worker.ts`: a healthy hinted region wins for
 * that request and leaves the pin alone):
 * - The most specific record of the client names its region: the pin of its verified token subject, else
 *   its `bv-region` cookie, else the pin of its address (the rate limiter's client id). The address pin
 *   carries a client across logging in; the cookie tells apart browsers behind one address.
 * - That region serves while healthy. When it is out, the client goes to its **home** (the region it was
 *   first pinned to) if healthy, else the router's choice, and stays pinned there (home unchanged).
 * - **Failback:** a client moved off its home goes back on its next write (POST, PUT, PATCH, DELETE, a
 *   GraphQL mutation) once home is healthy, never on a read: a write is where its newest state is made, and
 *   the writer region design makes the replica wait for its copy of forwarded writes, so reads after the
 *   move see everything the client wrote. An idle client's pin expires after `ttlMs` and it is chosen
 *   afresh.
 *
 * Bounded: an LRU map of at most `entriesMax` pins (a Map in recency order; the least recently seen goes
 * first), expiry checked on lookup, no timers.
 */

export interface RegionAffinityOptions {
  /** How long a pin lives after the client's last request (sliding). @default 300_000 */
  readonly ttlMs?: number;
  /** Pins kept; the least recently used goes first. @default 100_000 */
  readonly entriesMax?: number;
}

/** What the affinity needs of the router: health, and a choice without a hint. */
export interface AffinityRouter {
  choose(hint: null): string | undefined;
  isHealthy(name: string): boolean;
}

/** Who sent a request, and what kind of request it is. */
export interface AffinityClient {
  /** The verified token subject, when the request carried a valid token. */
  readonly subject: string | undefined;
  /** The rate limiter's client id: the connecting address, or the last `X-Forwarded-For` entry. */
  readonly address: string;
  /** The `bv-region` cookie the request carried, if any. */
  readonly cookie: string | undefined;
  /** True for a request that changes state (moves a failed-over client back home). */
  readonly write: boolean;
}

export interface RegionAffinity {
  /** The region for the client's unhinted request (pinned from now on), or undefined when none is healthy. */
  regionFor(client: AffinityClient): string | undefined;
  /** Pins held now. */
  size(): number;
}

interface Pin {
  region: string;
  /** The region the client was first pinned to; it goes back there on a write once it is healthy. */
  readonly home: string;
  expiresAtMs: number;
}

export const REGION_AFFINITY_DEFAULTS = Object.freeze({ ttlMs: 300_000, entriesMax: 100_000 });

/** Affinity over the regions `names` (anything else in a cookie is ignored), deciding with `router`. */
export function createRegionAffinity(
  names: readonly string[],
  router: AffinityRouter,
  options: RegionAffinityOptions = {},
  now: () => number = Date.now,
): RegionAffinity {
  const ttlMs = options.ttlMs ?? REGION_AFFINITY_DEFAULTS.ttlMs;
  const entriesMax = options.entriesMax ?? REGION_AFFINITY_DEFAULTS.entriesMax;
  if (!(ttlMs > 0)) throw new RangeError(`createRegionAffinity() ttlMs must be positive, got ${ttlMs}`);
  if (!(entriesMax > 0) || !Number.isSafeInteger(entriesMax)) {
    throw new RangeError(`createRegionAffinity() entriesMax must be a positive integer, got ${entriesMax}`);
  }
  const known = new Set(names);
  const pins = new Map<string, Pin>();

  function live(key: string, nowMs: number): Pin | undefined {
    const pin = pins.get(key);
    if (pin === undefined || pin.expiresAtMs > nowMs) return pin;
    pins.delete(key);
    return undefined;
  }

  function store(key: string, pin: Pin): void {
    // Re-inserting moves the key to the end: Map iteration order is then least recently used first.
    pins.delete(key);
    pins.set(key, pin);
    if (pins.size > entriesMax) pins.delete(pins.keys().next().value!);
  }

  function target(pin: Pin, write: boolean): string | undefined {
    const atHome = pin.region === pin.home;
    if (router.isHealthy(pin.region) && (atHome || !write || !router.isHealthy(pin.home))) return pin.region;
    return router.isHealthy(pin.home) ? pin.home : router.choose(null);
  }

  return {
    regionFor(client) {
      const nowMs = now();
      // Subjects and addresses share the map; the prefixes keep a subject from matching an address.
      const key = client.subject === undefined ? `a:${client.address}` : `s:${client.subject}`;
      const cookie = client.cookie !== undefined && known.has(client.cookie) ? client.cookie : undefined;
      const addressPin = live(`a:${client.address}`, nowMs);
      // A cookie says where the client is now, not where it came from: after a failover the edge sets it to
      // the other region, so its home comes from the address pin when there is one (else failback on a
      // write could never happen for clients that send cookies back).
      const found = (client.subject === undefined ? undefined : live(key, nowMs)) ??
        (cookie === undefined ? undefined : { region: cookie, home: addressPin?.home ?? cookie, expiresAtMs: 0 }) ??
        addressPin;
      const region = found === undefined ? router.choose(null) : target(found, client.write);
      if (region === undefined) return undefined;
      store(key, { region, home: found?.home ?? region, expiresAtMs: nowMs + ttlMs });
      return region;
    },
    size: () => pins.size,
  };
}
