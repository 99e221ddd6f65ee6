/**
 * @module
 * JSON-lines logger. Every line has time, level, service, msg, and the current traceId/correlationId.
 * Level from `BV_LOG_LEVEL` (debug|info|warn|error), read once.
 */
import { currentTraceContext } from "./trace_context.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let serviceName = "bitvelocity";
let minimum: LogLevel = (() => {
  const value = (globalThis.Deno?.env.get("BV_LOG_LEVEL") ?? "info") as LogLevel;
  return value in rank ? value : "info";
})();

/** Names the process in every line (set once by the process wiring). */
export function setLogService(name: string): void {
  serviceName = name;
}

export function setLogLevel(level: LogLevel): void {
  minimum = level;
}

function write(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
  if (rank[level] < rank[minimum]) return;
  const trace = currentTraceContext();
  const line = JSON.stringify({
    time: new Date().toISOString(),
    level,
    service: serviceName,
    msg,
    ...(trace ? { traceId: trace.traceId, correlationId: trace.correlationId } : {}),
    ...fields,
  });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

export const log = Object.freeze({
  debug: (msg: string, fields?: Record<string, unknown>) => write("debug", msg, fields),
  info: (msg: string, fields?: Record<string, unknown>) => write("info", msg, fields),
  warn: (msg: string, fields?: Record<string, unknown>) => write("warn", msg, fields),
  error: (msg: string, fields?: Record<string, unknown>) => write("error", msg, fields),
});
