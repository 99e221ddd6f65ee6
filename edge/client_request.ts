/**
 * @module
 * What the edge reads from a client's request before routing it: who the client is (for rate limits and
 * `X-Forwarded-For`), the identity headers it must not be trusted with, and cookies (the WebSocket sticky token).
 */

// The file itself (it imports nothing), not shared/http/mod.ts, whose other modules speak Hono and zod.
import { IDENTITY_HEADERS } from "../shared/http/internal_headers.ts";

/** Identity headers only the platform may set (declared in shared/, for the ingress too); a client's are dropped. */
export { IDENTITY_HEADERS };

const CLIENT_ID_CHARS_MAX = 64;
/** The WebSocket sticky token: the region a session started in, resent by browsers on every handshake. */
export const STICKY_COOKIE = "bv-region";

/** The value of cookie `name` in `request`, if any. */
export function cookieOf(request: Request, name: string): string | undefined {
  const header = request.headers.get("cookie");
  if (header === null) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** True for a loopback address: the only proxy the default client identification trusts. */
function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "::1" || address === "::ffff:127.0.0.1";
}

/** Who sent a request, as the edge knows it: the rate limiters' id and the peer's address. */
export interface EdgeClient {
  /** The id the per-client rate limit and the address pin count against. */
  readonly id: string;
  /** The peer that sent the request, appended to `X-Forwarded-For` on the way to a region; none when unknown. */
  readonly address: string | undefined;
}

/**
 * The connecting address Deno's server hands the app as its env (`ServeHandlerInfo.remoteAddr`); none in
 * `app.request`, nor on Workers, whose client address is the `CF-Connecting-IP` header (`EdgeOptions.clientAddressOf`).
 */
export function peerAddressOf(_request: Request, env: unknown): string | undefined {
  const remote = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr?.hostname;
  return typeof remote === "string" ? remote : undefined;
}

/**
 * The client a request from `address` counts against by default (see `EdgeRateLimitOptions.clientIdOf`): the address,
 * or the last `X-Forwarded-For` entry when the address is loopback (a local proxy) or unknown.
 */
export function defaultClientIdOf(request: Request, address: string | undefined): string {
  if (address === undefined || isLoopback(address)) {
    const forwarded = request.headers.get("x-forwarded-for");
    if (forwarded !== null) {
      const last = forwarded.slice(forwarded.lastIndexOf(",") + 1).trim();
      if (last !== "") return last.slice(0, CLIENT_ID_CHARS_MAX);
    }
  }
  return address ?? "unknown";
}

/** `request` without the identity headers only the edge may set (the same object when it has none). */
export function withoutIdentityHeaders(request: Request): Request {
  let found = false;
  for (const name of IDENTITY_HEADERS) if (request.headers.has(name)) found = true;
  if (!found) return request;
  const headers = new Headers(request.headers);
  for (const name of IDENTITY_HEADERS) headers.delete(name);
  return new Request(request, { headers });
}
