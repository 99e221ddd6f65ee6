/**
 * @module
 * What journeys through the edge need to see inside the regions: how many requests an ingress has proxied
 * (its own `bv_http_requests_total`), tokens signed with a region's real signing key (read from the region's
 * database, so a journey can forge expired or wrong-audience tokens that only differ from a real one in that
 * defect), and polling with a measured time.
 */
import { importJWK, type JWK, type JWTPayload, SignJWT } from "jose";
import { createPostgresSql } from "../../shared/adapters/postgres/mod.ts";
import { ACCESS_TOKEN_TYPE } from "../../shared/auth/verifier.ts";

/** The ingress's own operational routes: the edge probes `/readyz` every 2 s, so these are not client traffic. */
const OPERATIONAL_ROUTES = new Set(["/healthz", "/readyz", "/metrics"]);
const COUNTER_LINE = /^bv_http_requests_total\{([^}]*)\} (\d+(?:\.\d+)?(?:e\+\d+)?)$/;

/**
 * Requests an ingress has answered on its proxied routes (everything but `/healthz`, `/readyz`, `/metrics`),
 * from its own `/metrics`: the count a region would report for client traffic that reached it.
 */
export async function regionRequestCount(ingressUrl: string, routePrefixes?: readonly string[]): Promise<number> {
  let total = 0;
  for (const count of (await regionRequestCounts(ingressUrl, routePrefixes)).values()) total += count;
  return total;
}

/**
 * {@linkcode regionRequestCount} by counter line (route, method, status), to say what moved when it moved. With
 * `routePrefixes`, read from a deployable (whose routes are named, unlike the ingress's one `/*`): only the
 * lines of routes under one of them — client traffic to those paths, without the edge's own background
 * requests (JWKS reloads, invalidation-stream reconnects) that an ingress counts on the same `/*`.
 */
export async function regionRequestCounts(
  url: string,
  routePrefixes?: readonly string[],
): Promise<Map<string, number>> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`${url}/metrics answered ${response.status}`);
  const counts = new Map<string, number>();
  for (const line of (await response.text()).split("\n")) {
    const match = COUNTER_LINE.exec(line);
    if (!match) continue;
    const route = /route="([^"]*)"/.exec(match[1])?.[1];
    if (route === undefined || OPERATIONAL_ROUTES.has(route)) continue;
    if (routePrefixes !== undefined && !routePrefixes.some((prefix) => route.startsWith(prefix))) continue;
    counts.set(match[1], Number(match[2]));
  }
  return counts;
}

/** The counter lines that differ between two {@linkcode regionRequestCounts} readings, as "labels: +n". */
export function movedCounts(before: Map<string, number>, after: Map<string, number>): string[] {
  const moved: string[] = [];
  for (const [labels, count] of after) {
    const delta = count - (before.get(labels) ?? 0);
    if (delta !== 0) moved.push(`${labels}: +${delta}`);
  }
  return moved;
}

/** The edge's view of the regions from its `/metrics`: health and probe latency EWMA, by region. */
export async function edgeRegionView(
  edgeUrl: string,
): Promise<{ healthy: Record<string, number>; ewmaMs: Record<string, number> }> {
  const response = await fetch(`${edgeUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const view = { healthy: {} as Record<string, number>, ewmaMs: {} as Record<string, number> };
  for (const line of (await response.text()).split("\n")) {
    const match = /^bv_edge_region_(healthy|latency_ewma_ms)\{region="(\w+)"\} ([\d.]+)$/.exec(line);
    if (match) view[match[1] === "healthy" ? "healthy" : "ewmaMs"][match[2]] = Number(match[3]);
  }
  return view;
}

/** Signs access tokens with a region's active key, claims shaped like the security service's. */
export interface RealKeySigner {
  readonly kid: string;
  readonly issuer: string;
  readonly audience: string;
  sign(
    userId: string,
    overrides?: { readonly audience?: string; readonly issuedAgoSec?: number; readonly ttlSec?: number },
  ): Promise<string>;
}

/** Reads the active signing key of the auth service whose database is `pgUrl`. */
export async function realKeySigner(
  pgUrl: string,
  claims: { readonly issuer: string; readonly audience: string },
): Promise<RealKeySigner> {
  const sql = createPostgresSql({ url: pgUrl, maxConnections: 1, connectTimeoutSec: 5, statementTimeoutMs: 5_000 });
  let row: { kid: string; private_jwk: string | null } | undefined;
  try {
    [row] = await sql.query<{ kid: string; private_jwk: string | null }>`
      select kid, private_jwk from auth_signing_keys where status = 'active'`;
  } finally {
    await sql.close();
  }
  if (!row?.private_jwk) throw new Error(`No active signing key with a private half in ${pgUrl}`);
  const { kid } = row;
  const privateKey = await importJWK(JSON.parse(row.private_jwk) as JWK, "EdDSA");
  return {
    kid,
    issuer: claims.issuer,
    audience: claims.audience,
    async sign(userId, overrides) {
      const issuedSec = Math.floor(Date.now() / 1000) - (overrides?.issuedAgoSec ?? 0);
      const payload: JWTPayload = { email: `${userId}@journey.test`, roles: ["CUSTOMER"] };
      return await new SignJWT(payload)
        .setProtectedHeader({ alg: "EdDSA", kid, typ: ACCESS_TOKEN_TYPE })
        .setSubject(userId)
        .setIssuer(claims.issuer)
        .setAudience(overrides?.audience ?? claims.audience)
        .setIssuedAt(issuedSec)
        .setNotBefore(issuedSec)
        .setExpirationTime(issuedSec + (overrides?.ttlSec ?? 900))
        .setJti(crypto.randomUUID())
        .sign(privateKey);
    },
  };
}

/** Polls `read` every `pauseMs` until `done` holds; resolves with the elapsed ms and the last value. */
export async function timeUntil<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  options: { readonly timeoutMs: number; readonly pauseMs?: number; readonly since?: number },
): Promise<{ elapsedMs: number; value: T }> {
  const started = options.since ?? performance.now();
  for (;;) {
    const value = await read();
    const elapsedMs = performance.now() - started;
    if (done(value)) return { elapsedMs, value };
    if (elapsedMs > options.timeoutMs) {
      throw new Error(`${what}: not within ${options.timeoutMs} ms; last: ${JSON.stringify(value)}`);
    }
    await new Promise((r) => setTimeout(r, options.pauseMs ?? 50));
  }
}
