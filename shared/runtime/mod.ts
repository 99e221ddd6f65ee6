/** @module The process shell: service app, readiness, lifecycle and inter-service HTTP calls. */
export * from "./service_app.ts";
export * from "./readiness.ts";
export * from "./lifecycle.ts";
export * from "./http_client.ts";
export * from "./wakeable_sleep.ts";
