/**
 * @module
 * Embedded (in-process) adapters: the default when no external service is configured. Each one passes the
 * same contract suite as its real counterpart.
 */
export { createMemoryEventLog } from "./event_log.ts";
export { createMemoryCache } from "./cache.ts";
export { createMemoryWorkQueue } from "./work_queue.ts";
