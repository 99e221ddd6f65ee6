/**
 * @module HTTP helpers shared by every service: problem responses, validated JSON bodies, bounds on reading a request
 * body, the proxy step and the platform's internal headers.
 */
export * from "./problem_response.ts";
export * from "./json_body.ts";
export * from "./proxy.ts";
export * from "./request_body.ts";
export * from "./internal_headers.ts";
export * from "./event_stream_end.ts";
