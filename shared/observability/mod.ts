/** @module Logs, trace context and metrics shared by every process. */
export * from "./trace_context.ts";
export * from "./logger.ts";
export * from "./metrics.ts";
