/**
 * @module
 * W3C trace context (`traceparent`) and correlation ids, carried in an AsyncLocalStorage so logs and
 * outgoing calls (HTTP, gRPC metadata, Kafka/AMQP headers, MQTT v5 user properties) pick them up.
 * When Deno's built-in OpenTelemetry is on (`OTEL_DENO=true`) the active span's ids are used instead.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { trace } from "@opentelemetry/api";

export interface TraceContext {
  /** 32 lower-case hex digits. */
  readonly traceId: string;
  /** 16 lower-case hex digits: the span of this process that the context belongs to. */
  readonly spanId: string;
  readonly sampled: boolean;
  readonly correlationId: string;
}

const storage = new AsyncLocalStorage<TraceContext>();
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** "00".."ff": ids are made on every request and every bridged MQTT message, so no per-byte formatting. */
const HEX_PAIRS: readonly string[] = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function randomHex(bytes: number): string {
  const buffer = crypto.getRandomValues(new Uint8Array(bytes));
  let hex = "";
  for (const b of buffer) hex += HEX_PAIRS[b];
  return hex;
}

/** A fresh root context (new trace id, correlation id = trace id unless given). */
export function newTraceContext(correlationId?: string): TraceContext {
  const traceId = randomHex(16);
  return { traceId, spanId: randomHex(8), sampled: true, correlationId: correlationId ?? traceId };
}

/** Parses a `traceparent` header; null when absent or malformed (all-zero ids are invalid per spec). */
export function parseTraceparent(header: string | null | undefined): Omit<TraceContext, "correlationId"> | null {
  const match = header ? TRACEPARENT.exec(header.trim().toLowerCase()) : null;
  if (!match || /^0+$/.test(match[1]) || /^0+$/.test(match[2])) return null;
  return { traceId: match[1], spanId: match[2], sampled: (parseInt(match[3], 16) & 1) === 1 };
}

export function formatTraceparent(context: Pick<TraceContext, "traceId" | "spanId" | "sampled">): string {
  return `00-${context.traceId}-${context.spanId}-${context.sampled ? "01" : "00"}`;
}

/**
 * The context for work started by an incoming message: continues the caller's trace with a new span id,
 * or starts a new trace. Header names are matched case-insensitively.
 */
export function contextFromCarrier(carrier: Readonly<Record<string, string | undefined>>): TraceContext {
  const lower: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(carrier)) lower[k.toLowerCase()] = v;
  const parent = parseTraceparent(lower["traceparent"]);
  const correlationId = sanitizeId(lower["correlation-id"] ?? lower["x-correlation-id"]);
  if (!parent) return newTraceContext(correlationId);
  return { ...parent, spanId: randomHex(8), correlationId: correlationId ?? parent.traceId };
}

/** Correlation ids come from clients: keep them short and printable. */
function sanitizeId(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const clean = value.replace(/[^\w.:-]/g, "").slice(0, 128);
  return clean.length > 0 ? clean : undefined;
}

/** Runs `fn` with `context` as the current trace context. */
export function withTraceContext<T>(context: TraceContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The current context, preferring an active OpenTelemetry span. */
export function currentTraceContext(): TraceContext | undefined {
  const own = storage.getStore();
  const span = trace.getActiveSpan()?.spanContext();
  if (span && span.traceId !== "00000000000000000000000000000000") {
    return {
      traceId: span.traceId,
      spanId: span.spanId,
      sampled: (span.traceFlags & 1) === 1,
      correlationId: own?.correlationId ?? span.traceId,
    };
  }
  return own;
}

export function currentTraceId(): string | undefined {
  return currentTraceContext()?.traceId;
}

/** Headers to put on an outgoing call or message so the next hop continues this trace. */
export function traceHeaders(): Record<string, string> {
  const context = currentTraceContext();
  if (!context) return {};
  return { traceparent: formatTraceparent(context), "correlation-id": context.correlationId };
}
