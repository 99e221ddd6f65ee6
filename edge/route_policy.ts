/**
 * @module
 * Which requests need a token at the edge and which are hot public reads the edge may cache. Prefixes are
 * matched as plain string prefixes, not whole segments, so `/api/v1/ordersx` errs on the side of needing a
 * token. GraphQL POSTs are classified by their body (`graphql_read.ts`), not here.
 */

/** Mutations that anyone may send: they are how a client gets a token. */
const ANONYMOUS_MUTATIONS: ReadonlySet<string> = new Set([
  "/api/v1/auth/signup",
  "/api/v1/auth/login",
  "/api/v1/auth/refresh",
  // Holds a refresh token, not an access token: a client whose access token expired must still sign out.
  "/api/v1/auth/logout",
]);

/** Reads of private resources: a token is required even for GET. */
const PRIVATE_PREFIXES: readonly string[] = Object.freeze([
  "/api/v1/orders",
  "/api/v1/carts",
  "/api/v1/webhooks",
  "/api/v1/ops",
  "/api/v1/analytics",
  "/ws/",
  "/sse/orders/",
]);

/**
 * Paths browsers reach with WebSocket and EventSource, whose APIs cannot set an Authorization header: only
 * here may a token come as the `access_token` query parameter (as the regions accept it on the same paths).
 * Nowhere else: tokens in URLs end up in logs, histories and Referer headers.
 */
const QUERY_TOKEN_PREFIXES: readonly string[] = Object.freeze(["/ws/", "/sse/orders/"]);

/** True when a request to `path` may carry its token in the `access_token` query parameter. */
export function queryTokenAllowed(path: string): boolean {
  for (const prefix of QUERY_TOKEN_PREFIXES) {
    if (path.startsWith(prefix)) return true;
  }
  return false;
}

/** True for methods that change state: every one of them needs a token unless listed as anonymous. */
export function isMutation(method: string): boolean {
  return method === "POST" || method === "PUT" || method === "PATCH" || method === "DELETE";
}

/**
 * True when the edge does not check a token the request may carry: the anonymous mutations issue or revoke
 * tokens and their regions read no access token. A client's HTTP layer often attaches its last access token to
 * every call, and by the time it refreshes or signs out that token has usually expired: checked, it made
 * refresh and logout answer 401 AUTH.TOKEN_EXPIRED.
 */
export function tokenIgnored(method: string, path: string): boolean {
  return method === "POST" && ANONYMOUS_MUTATIONS.has(path);
}

/** True when a request to `path` with `method` must carry a valid token before it reaches a region. */
export function tokenRequired(method: string, path: string): boolean {
  if (isMutation(method)) return !ANONYMOUS_MUTATIONS.has(path);
  // CORS preflights never carry credentials (Fetch standard) and change nothing.
  if (method === "OPTIONS") return false;
  for (const prefix of PRIVATE_PREFIXES) {
    if (path.startsWith(prefix)) return true;
  }
  return false;
}

const PRODUCTS = "/api/v1/products";

/**
 * True for the REST reads the edge caches: GET of products (item, listing, sub-resources). Stock
 * (`/api/v1/inventory/{id}`) is not cached at the edge: every order changes it (so entries would be purged
 * about as often as read), and a buyer must see the stock their order just reserved, while a purge on
 * `stock.adjusted` arrives after the order's answer (stream latency; up to the TTL while a stream is down).
 */
export function isCacheableGet(method: string, path: string): boolean {
  if (method !== "GET") return false;
  return path === PRODUCTS || path.startsWith(`${PRODUCTS}/`);
}

/**
 * The product a cacheable path is about (`/api/v1/products/{id}…`), or undefined for listings, which a purge
 * of any product must drop.
 */
export function productIdOfPath(path: string): string | undefined {
  if (!path.startsWith(`${PRODUCTS}/`)) return undefined;
  const start = PRODUCTS.length + 1;
  const end = path.indexOf("/", start);
  const id = end < 0 ? path.slice(start) : path.slice(start, end);
  if (id === "") return undefined;
  // Product ids are UUIDs, which the region matches case-insensitively and purges in lower case.
  try {
    return decodeURIComponent(id).toLowerCase();
  } catch {
    // A malformed escape cannot name a real product; the raw text still lets a purge find the entry.
    return id.toLowerCase();
  }
}
