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

function randomHex(bytes: number): string {
  const buffer = crypto.getRandomValues(new Uint8Array(bytes));
  let hex = "";
  for (const byte of buffer) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** The trace to forward for a request with these headers. */
export function edgeTraceOf(headers: Headers): EdgeTrace {
  const match = TRACEPARENT.exec((headers.get("traceparent") ?? "").trim().toLowerCase());
  const valid = match !== null && !ALL_ZERO.test(match[1]) && !ALL_ZERO.test(match[2]);
  const traceId = valid ? match[1] : randomHex(16);
  const flags = valid ? match[3] : "01";
  const raw = headers.get("correlation-id") ?? headers.get("x-correlation-id") ?? "";
  const clean = raw.replace(/[^\w.:-]/g, "").slice(0, CORRELATION_ID_CHARS_MAX);
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
