/**
 * @module
 * Writes of the single-writer tables that reach a region which is not the writer are forwarded to the writer
 * region's ingress (seed 000 section 5). Each service says which of its routes write (`isWrite`): e-commerce its
 * order, catalog, inventory and cart writes, security every auth write. The request goes as it came —
 * Authorization, Idempotency-Key, correlation id and body — so the writer authenticates it and replays a retried
 * key exactly as if the client had called it directly. Only when forwarding is impossible (no URL for the writer,
 * or a forwarding loop) does the client get 421 `ECOMMERCE.ORDER_WRITER_ELSEWHERE` naming the writer (the code
 * keeps the name it was registered with: the writer is the order writer, whatever the table).
 *
 * The hop itself (`x-bv-forwarded-from-region`) is signed with `BV_INTERNAL_SIGNING_KEY` (hop_signature.ts): a
 * claim whose signature does not verify is treated as absent (logged), so a client that reaches an ingress
 * directly can neither make a replica refuse its write nor learn the writer's WAL position.
 */
import type { MiddlewareHandler } from "hono";
import { problemResponse, PROXY_ERROR_HEADER, proxyRequest } from "../../../shared/http/mod.ts";
import { log, traceHeaders } from "../../../shared/observability/mod.ts";
import type { WriterRoleReader } from "./writer_role.ts";
import { assertHopSigningKey, type HopVerdict, signedHopHeaders, verifiedHopOf } from "./hop_signature.ts";
import {
  REPLICA_WAIT_HEADER,
  type ReplicationPositions,
  waitForReplica,
  WRITER_LSN_HEADER,
} from "./read_your_writes.ts";

/** Set on every answer to a forwarded write: the region that wrote it. */
export const WRITER_HEADER = "x-bv-order-writer";

export interface ForwardWritesOptions {
  readonly role: WriterRoleReader;
  /** The routes that write the single-writer tables (`c.req.method`, `c.req.path`); reads are never matched. */
  readonly isWrite: (method: string, path: string) => boolean;
  /** What the refusal says is written elsewhere, sentence-initial ("Orders"). */
  readonly subject: string;
  /** Names a forwarded write in logs ("order write"). */
  readonly label: string;
  /** The ingress base URL of a region (`http://127.0.0.1:8081`), or undefined for an unknown region. */
  readonly ingressUrlOf: (region: string) => string | undefined;
  /** Bound on waiting for the writer's response headers. */
  readonly timeoutMs: number;
  /** Signs and verifies the hop claim; the same in every region (`BV_INTERNAL_SIGNING_KEY`). */
  readonly signingKey: string;
  /** Injected for tests. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** WAL positions for read-your-writes (read_your_writes.ts); without them forwarded answers are not held. */
  readonly positions?: ReplicationPositions;
}

/** Middleware: forwards the service's writes (`isWrite`) while this region is a replica; serves them on the writer. */
export function forwardWritesToWriter(options: ForwardWritesOptions): MiddlewareHandler {
  if (!(options.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${options.timeoutMs}`);
  assertHopSigningKey(options.signingKey);
  return async (c, next) => {
    // Hono's path, percent-decoded as Hono routes it: the raw one would let `/api/v1/%6Frders` reach the order
    // route here unforwarded, to fail on the replica's write guard (SQLSTATE 25006, a 500).
    if (!options.isWrite(c.req.method, c.req.path)) return await next();
    const role = await options.role.current();
    if (role === undefined) return await next();
    const hop = await hopOf(c.req.method, c.req.path, c.req.raw.headers, options.signingKey);
    const from = hop.claimed && hop.trusted ? hop.fromRegion : undefined;
    if (role.writerRegion === role.localRegion) {
      await next();
      // A write forwarded by the replica: tell it the WAL position to wait for before it answers.
      if (options.positions && from !== undefined && c.res.status < 300) {
        const lsn = await options.positions.writerLsn().catch(() => undefined);
        if (lsn !== undefined) c.res.headers.set(WRITER_LSN_HEADER, lsn);
      }
      return;
    }
    const writer = role.writerRegion;
    const upstream = options.ingressUrlOf(writer);
    if (upstream === undefined || hop.claimed) {
      // A forwarded write that lands on another replica means the regions disagree on the writer (a
      // promotion in progress): refusing is safe, forwarding again could loop. A claim whose signature does not
      // verify is refused too: it is a forgery or a peer whose key differs, and forwarding it again would lose the
      // loop guard exactly when the regions disagree on both the key and the writer.
      return problemResponse(
        "ECOMMERCE.ORDER_WRITER_ELSEWHERE",
        `${options.subject} are written in region "${writer}"; send the request there` +
          (hop.claimed ? ` (it was already forwarded by region "${hop.fromRegion.slice(0, 64)}")` : ""),
        { headers: { [WRITER_HEADER]: writer } },
      );
    }
    const response = await proxyRequest(c.req.raw, {
      upstream,
      headersTimeoutMs: options.timeoutMs,
      // Replaces any hop headers the client sent (a claim it made without a valid signature was refused above).
      setHeaders: {
        ...traceHeaders(),
        ...await signedHopHeaders(
          { method: c.req.method, path: c.req.path, fromRegion: role.localRegion },
          options.signingKey,
        ),
      },
      fetch: options.fetch,
    });
    if (response.status >= 500) {
      log.warn(`${options.label} forwarded to the writer failed`, { writer, status: response.status });
    }
    const headers = new Headers(response.headers);
    if (options.positions && response.status < 300) {
      const wait = await waitForReplica(options.positions, response.headers.get(WRITER_LSN_HEADER)).catch(() => ({
        waitedMs: 0,
        caughtUp: false,
      }));
      if (!wait.caughtUp) log.warn("replica did not catch up with a forwarded write in time", { writer, ...wait });
      headers.set(REPLICA_WAIT_HEADER, wait.waitedMs.toFixed(1));
    }
    // This region answered; only the hop to the writer failed. Left in place, an edge would take the answer
    // for "this region is unreachable".
    headers.delete(PROXY_ERROR_HEADER);
    headers.set(WRITER_HEADER, writer);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  };
}

/**
 * The region that forwarded this request, when its hop signature verifies; undefined otherwise. A claim without a
 * valid signature is what a client can send (the ingress passes the header for the regions' own forwards): it is
 * logged once and treated as absent, so the request is served as any client's.
 */
async function hopOf(method: string, path: string, headers: Headers, signingKey: string): Promise<HopVerdict> {
  const hop = await verifiedHopOf({ method, path, headers }, signingKey);
  if (!hop.claimed || hop.trusted) return hop;
  log.warn("a forwarded-write claim without a valid signature is not trusted", {
    claimedFrom: hop.fromRegion.slice(0, 64),
    code: hop.code,
    reason: hop.reason,
    method,
    path: path.slice(0, 256),
  });
  return hop;
}
