/** @module Contracts shared by every service: envelope, event types, topics, problem codes. */
export * from "./envelope.ts";
export * from "./topics.ts";
export * from "./problem.ts";
export * as ecommerceEvents from "./events/ecommerce.ts";
export * as securityEvents from "./events/security.ts";
export * as pricingEvents from "./events/pricing.ts";
export * as sensorEvents from "./events/sensors.ts";
