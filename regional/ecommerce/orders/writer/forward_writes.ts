/**
 * @module
 * Writes of the single-writer tables (orders, and the catalog, inventory and carts they read) that reach a
 * region which is not the writer are forwarded to the writer region's ingress (seed 000 section 5) by the
 * forwarder every service shares (`regional/wiring/writer/forward_writes.ts`; security forwards its auth writes
 * with it too); this file says which e-commerce routes write. The request goes as it came — Authorization,
 * Idempotency-Key, correlation id and body — so the writer authenticates it and replays a retried key
 * exactly as if the client had called it directly. Only when forwarding is impossible (no URL for the
 * writer, or a forwarding loop) does the client get 421 `ECOMMERCE.ORDER_WRITER_ELSEWHERE` naming the writer.
 *
 * The hop itself (`x-bv-forwarded-from-region`) is signed with `BV_INTERNAL_SIGNING_KEY` (`regional/wiring/writer/hop_signature.ts`): a
 * claim whose signature does not verify is treated as absent (logged), so a client that reaches an ingress
 * directly can neither make a replica refuse its write nor learn the writer's WAL position.
 */
import type { MiddlewareHandler } from "hono";
import {
  FORWARDED_FROM_HEADER,
  forwardWritesToWriter,
  type ReplicationPositions,
  WRITER_HEADER,
  type WriterRoleReader,
} from "../../../wiring/writer/mod.ts";

/** Set on a forwarded request (the region that forwarded it), signed; a second hop is refused, never looped. */
export { FORWARDED_FROM_HEADER };
/** Set on every answer to a forwarded write: the region that wrote it. */
export const ORDER_WRITER_HEADER = WRITER_HEADER;

/** POST /api/v1/orders and POST /api/v1/orders/{id}/pay|cancel|fulfill. */
const ORDER_WRITE_PATH = /^\/api\/v1\/orders(?:\/[^/]+\/(?:pay|cancel|fulfill))?\/?$/;
/** The other writes of the replicated tables, by method (catalog, inventory adjustments, carts, webhooks). */
const OTHER_WRITE_PATHS: readonly (readonly [string, RegExp])[] = [
  ["POST", /^\/api\/v1\/products\/?$/],
  ["PUT", /^\/api\/v1\/products\/[^/]+\/?$/],
  ["PATCH", /^\/api\/v1\/products\/[^/]+\/?$/],
  ["POST", /^\/api\/v1\/inventory\/[^/]+\/adjustments\/?$/],
  ["POST", /^\/api\/v1\/carts\/?$/],
  ["POST", /^\/api\/v1\/carts\/[^/]+\/items\/?$/],
  ["PUT", /^\/api\/v1\/carts\/[^/]+\/items\/[^/]+\/?$/],
  ["DELETE", /^\/api\/v1\/carts\/[^/]+\/items\/[^/]+\/?$/],
  ["DELETE", /^\/api\/v1\/carts\/[^/]+\/?$/],
  // Partner webhook subscriptions: create, delete, rotate the secret (their reads stay local).
  ["POST", /^\/api\/v1\/webhooks\/subscriptions\/?$/],
  ["DELETE", /^\/api\/v1\/webhooks\/subscriptions\/[^/]+\/?$/],
  ["POST", /^\/api\/v1\/webhooks\/subscriptions\/[^/]+\/rotate-secret\/?$/],
];

export interface ForwardOrderWritesOptions {
  readonly role: WriterRoleReader;
  /** The ingress base URL of a region (`http://127.0.0.1:8081`), or undefined for an unknown region. */
  readonly ingressUrlOf: (region: string) => string | undefined;
  /** Bound on waiting for the writer's response headers (placing an order includes a payment-free reserve). */
  readonly timeoutMs: number;
  /** Signs and verifies the hop claim; shared by every e-commerce process (`BV_INTERNAL_SIGNING_KEY`). */
  readonly signingKey: string;
  /** Injected for tests. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** WAL positions for read-your-writes (read_your_writes.ts); without them forwarded answers are not held. */
  readonly positions?: ReplicationPositions;
}

/** True for the order routes that write the replicated order tables. */
export function isOrderWrite(method: string, pathname: string): boolean {
  return method === "POST" && ORDER_WRITE_PATH.test(pathname);
}

/**
 * True for every route that writes the single-writer tables (`REPLICATED_TABLES`): the order writes, product
 * create/replace/patch, inventory adjustments, cart create/add/change/remove and webhook subscription
 * create/delete/rotate-secret. Reads are never matched.
 */
export function isReplicatedWrite(method: string, pathname: string): boolean {
  return isOrderWrite(method, pathname) || OTHER_WRITE_PATHS.some(([m, path]) => m === method && path.test(pathname));
}

/**
 * Middleware for the e-commerce app: forwards the writes of the replicated tables while this region is a replica
 * (the generic forwarder, `regional/wiring/writer/forward_writes.ts`, which security's auth writes use too).
 */
export function forwardOrderWrites(options: ForwardOrderWritesOptions): MiddlewareHandler {
  return forwardWritesToWriter({ ...options, isWrite: isReplicatedWrite, subject: "Orders", label: "order write" });
}
