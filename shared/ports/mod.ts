/**
 * @module
 * The ports domain code talks to. Adapters live under `shared/adapters/`; choosing them happens in one
 * wiring file per process.
 */
export * from "./event_log.ts";
export * from "./cache.ts";
export * from "./work_queue.ts";
export * from "./sql.ts";
export * from "./mqtt_bus.ts";
