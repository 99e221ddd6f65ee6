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

/** True for methods that change state: every one of them needs a token unless listed as anonymous. */
export function isMutation(method: string): boolean {
  return method === "POST" || method === "PUT" || method === "PATCH" || method === "DELETE";
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
const INVENTORY = "/api/v1/inventory/";

/**
 * True for the REST reads the edge caches: GET of products (item, listing, sub-resources). Stock is not
 * cached at the edge: every order changes it, and a buyer must see the stock their order just reserved
 * (issue 5 names product reads only).
 */
export function isCacheableGet(method: string, path: string): boolean {
  if (method !== "GET") return false;
  return path === PRODUCTS || path.startsWith(`${PRODUCTS}/`);
}

/**
 * The product a cacheable path is about (`/api/v1/products/{id}…`, `/api/v1/inventory/{id}`), or undefined
 * for listings, which a purge of any product must drop.
 */
export function productIdOfPath(path: string): string | undefined {
  const start = path.startsWith(`${PRODUCTS}/`)
    ? PRODUCTS.length + 1
    : path.startsWith(INVENTORY)
    ? INVENTORY.length
    : -1;
  if (start < 0) return undefined;
  const end = path.indexOf("/", start);
  const id = end < 0 ? path.slice(start) : path.slice(start, end);
  if (id === "") return undefined;
  try {
    return decodeURIComponent(id);
  } catch {
    // A malformed escape cannot name a real product; the raw text still lets a purge find the entry.
    return id;
  }
}
