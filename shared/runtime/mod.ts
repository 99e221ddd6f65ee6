/** @module The process shell: service app, readiness, lifecycle, inter-service HTTP calls and pid locks. */
export * from "./service_app.ts";
export * from "./readiness.ts";
export * from "./lifecycle.ts";
export * from "./http_client.ts";
export * from "./wakeable_sleep.ts";
export * from "./pid_lock.ts";
