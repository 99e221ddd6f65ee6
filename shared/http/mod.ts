/** @module HTTP helpers shared by every service: problem responses and validated JSON bodies. */
export * from "./problem_response.ts";
export * from "./json_body.ts";
export * from "./proxy.ts";
