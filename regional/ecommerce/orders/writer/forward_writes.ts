/**
 * @module
 * Order writes that reach a region which is not the order writer are forwarded to the writer region's
 * ingress (seed 000 section 5: single writer). The request goes as it came — Authorization,
 * Idempotency-Key, correlation id and body — so the writer authenticates it and replays a retried key
 * exactly as if the client had called it directly. Only when forwarding is impossible (no URL for the
 * writer, or a forwarding loop) does the client get 421 `ECOMMERCE.ORDER_WRITER_ELSEWHERE` naming the writer.
 */
import type { MiddlewareHandler } from "hono";
import { problemResponse, PROXY_ERROR_HEADER, proxyRequest } from "../../../../shared/http/mod.ts";
import { log, traceHeaders } from "../../../../shared/observability/mod.ts";
import type { WriterRoleReader } from "./writer_role.ts";

/** Set on a forwarded request (the region that forwarded it); a second hop is refused, never looped. */
export const FORWARDED_FROM_HEADER = "x-bv-forwarded-from-region";
/** Set on every answer to a forwarded write: the region that wrote it. */
export const ORDER_WRITER_HEADER = "x-bv-order-writer";

/** POST /api/v1/orders and POST /api/v1/orders/{id}/pay|cancel|fulfill. */
const ORDER_WRITE_PATH = /^\/api\/v1\/orders(?:\/[^/]+\/(?:pay|cancel|fulfill))?\/?$/;

export interface ForwardOrderWritesOptions {
  readonly role: WriterRoleReader;
  /** The ingress base URL of a region (`http://127.0.0.1:8081`), or undefined for an unknown region. */
  readonly ingressUrlOf: (region: string) => string | undefined;
  /** Bound on waiting for the writer's response headers (placing an order includes a payment-free reserve). */
  readonly timeoutMs: number;
  /** Injected for tests. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}

/** True for the order routes that write the replicated order tables. */
export function isOrderWrite(method: string, pathname: string): boolean {
  return method === "POST" && ORDER_WRITE_PATH.test(pathname);
}

/** Middleware for the e-commerce app: forwards order writes while this region is a replica. */
export function forwardOrderWrites(options: ForwardOrderWritesOptions): MiddlewareHandler {
  if (!(options.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${options.timeoutMs}`);
  return async (c, next) => {
    if (!isOrderWrite(c.req.method, new URL(c.req.url).pathname)) return await next();
    const role = await options.role.current();
    if (role === undefined || role.writerRegion === role.localRegion) return await next();
    const writer = role.writerRegion;
    const upstream = options.ingressUrlOf(writer);
    const from = c.req.header(FORWARDED_FROM_HEADER);
    if (upstream === undefined || from !== undefined) {
      // A forwarded write that lands on another replica means the regions disagree on the writer (a
      // promotion in progress): refusing is safe, forwarding again could loop.
      return problemResponse(
        "ECOMMERCE.ORDER_WRITER_ELSEWHERE",
        `Orders are written in region "${writer}"; send the request there` +
          (from !== undefined ? ` (it was already forwarded by region "${from}")` : ""),
        { headers: { [ORDER_WRITER_HEADER]: writer } },
      );
    }
    const response = await proxyRequest(c.req.raw, {
      upstream,
      headersTimeoutMs: options.timeoutMs,
      setHeaders: { ...traceHeaders(), [FORWARDED_FROM_HEADER]: role.localRegion },
      fetch: options.fetch,
    });
    if (response.status >= 500) {
      log.warn("order write forwarded to the writer failed", { writer, status: response.status });
    }
    const headers = new Headers(response.headers);
    // This region answered; only the hop to the writer failed. Left in place, an edge would take the answer
    // for "this region is unreachable".
    headers.delete(PROXY_ERROR_HEADER);
    headers.set(ORDER_WRITER_HEADER, writer);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  };
}
