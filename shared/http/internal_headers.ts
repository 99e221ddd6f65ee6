/**
 * @module
 * The platform's own request headers, declared once for the edge and the regional ingress: only one of the
 * platform's hops may set them, so a copy that arrives from a client is dropped where the request enters.
 * No imports: the edge (written to run as a Worker too) takes this file as it is.
 */

/** Identity and forwarding headers only the platform sets; the edge drops a client's copies of every one. */
export const IDENTITY_HEADERS: readonly string[] = Object.freeze([
  "x-bv-verified-sub",
  "x-bv-verified-email",
  "x-bv-verified-roles",
  "x-bv-user-id",
  "x-bv-principal",
  // Set by a replica region when it forwards a write to the writer; a client's copy could force a 421.
  "x-bv-forwarded-from-region",
]);

/**
 * The ones a hop of the platform sends *into* a region's ingress, so the ingress passes them on: the edge's
 * verified subject (for logging) and a replica's `x-bv-forwarded-from-region` (its write forwarding calls the
 * writer region's ingress, `regional/ecommerce/orders/writer/forward_writes.ts`). The ingress cannot tell those
 * callers from a client that reaches it directly (same door, no credential on the hop), so for these two it
 * relies on the ingress being reachable only from edges and regions (docs/ARCHITECTURE.md).
 */
export const INGRESS_HOP_HEADERS: readonly string[] = Object.freeze([
  "x-bv-verified-sub",
  "x-bv-forwarded-from-region",
]);

/** What a region's ingress removes from every request: identity headers no hop of the platform sends it. */
export const INGRESS_DROPPED_HEADERS: ReadonlySet<string> = new Set(
  IDENTITY_HEADERS.filter((name) => !INGRESS_HOP_HEADERS.includes(name)),
);
