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
  // Set by a replica region when it forwards a write to the writer, with its signature (the hop headers): only
  // a region sends them, never a client through the edge.
  "x-bv-forwarded-from-region",
  "x-bv-hop-id",
  "x-bv-hop-timestamp",
  "x-bv-hop-signature",
]);

/**
 * The ones a hop of the platform sends *into* a region's ingress, so the ingress passes them on: the edge's
 * verified subject (for logging) and a replica's `x-bv-forwarded-from-region` with its `x-bv-hop-*` signature
 * (its write forwarding calls the writer region's ingress, `regional/ecommerce/orders/writer/forward_writes.ts`).
 * The ingress cannot tell those callers from a client that reaches it directly (same door), so the e-commerce
 * service trusts the forwarded-from claim only when its signature verifies (`regional/wiring/writer/hop_signature.ts`);
 * no region decides anything on the verified subject.
 */
export const INGRESS_HOP_HEADERS: readonly string[] = Object.freeze([
  "x-bv-verified-sub",
  "x-bv-forwarded-from-region",
  "x-bv-hop-id",
  "x-bv-hop-timestamp",
  "x-bv-hop-signature",
]);

/** What a region's ingress removes from every request: identity headers no hop of the platform sends it. */
export const INGRESS_DROPPED_HEADERS: ReadonlySet<string> = new Set(
  IDENTITY_HEADERS.filter((name) => !INGRESS_HOP_HEADERS.includes(name)),
);
