/**
 * @module
 * Trace and correlation ids at the edge, on Web Crypto only (`shared/observability` keeps its context in
 * node-only storage, so the edge cannot use it). The edge is the first hop of a request: it continues a
 * valid W3C `traceparent` with a span id of its own (same trace id and flags), or starts a trace when there
 * is none or it is malformed; it keeps a client's `Correlation-Id` (sanitised the way regions sanitise it)
 * or uses the trace id. Both go to the region and come back on the response.
 */

export interface EdgeTrace {
  /** `00-<trace id>-<edge span id>-<flags>`: what the region sees as its parent. */
  readonly traceparent: string;
  readonly correlationId: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ALL_ZERO = /^0+$/;
/** Correlation ids come from clients: the same bound and alphabet as `shared/observability/trace_context.ts`. */
const CORRELATION_ID_CHARS_MAX = 128;

/** Two hex digits per byte value: formatting ids is on every request's path (cache hits included). */
const HEX_PAIRS: readonly string[] = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
/**
 * Random bytes drawn in blocks: one `getRandomValues` call per 170 traces instead of one per id. The bytes
 * are used once each, so ids stay as unpredictable as with a call per id.
 */
const RANDOM_BLOCK_BYTES = 4_096;
const randomBlock = new Uint8Array(RANDOM_BLOCK_BYTES);
let randomOffset = RANDOM_BLOCK_BYTES;

function randomHex(bytes: number): string {
  if (randomOffset + bytes > RANDOM_BLOCK_BYTES) {
    crypto.getRandomValues(randomBlock);
    randomOffset = 0;
  }
  let hex = "";
  for (let i = randomOffset; i < randomOffset + bytes; i++) hex += HEX_PAIRS[randomBlock[i]];
  randomOffset += bytes;
  return hex;
}

/** The trace to forward for a request with these headers. */
export function edgeTraceOf(headers: Headers): EdgeTrace {
  const incoming = headers.get("traceparent");
  const match = incoming === null ? null : TRACEPARENT.exec(incoming.trim().toLowerCase());
  const valid = match !== null && !ALL_ZERO.test(match[1]) && !ALL_ZERO.test(match[2]);
  const traceId = valid ? match[1] : randomHex(16);
  const flags = valid ? match[3] : "01";
  const raw = headers.get("correlation-id") ?? headers.get("x-correlation-id");
  const clean = raw === null ? "" : raw.replace(/[^\w.:-]/g, "").slice(0, CORRELATION_ID_CHARS_MAX);
  return { traceparent: `00-${traceId}-${randomHex(8)}-${flags}`, correlationId: clean || traceId };
}

/** Sets the trace headers on an answer; a response whose headers are immutable is returned unchanged. */
export function withTraceHeaders(response: Response, trace: EdgeTrace): Response {
  try {
    response.headers.set("traceparent", trace.traceparent);
    response.headers.set("correlation-id", trace.correlationId);
  } catch {
    // A fetch Response from a runtime that freezes headers: the ids still reached the region.
  }
  return response;
}
