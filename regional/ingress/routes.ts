/**
 * @module
 * The path table of a regional ingress: which deployable serves which path prefix. Matching is by whole
 * path segments (`/api/v1/products` matches `/api/v1/products/42`, not `/api/v1/productsx`); the longest
 * prefix wins.
 */
import type { ServiceName } from "../../shared/config/config.ts";

export const ROUTES: readonly { readonly prefix: string; readonly service: ServiceName }[] = Object.freeze([
  { prefix: "/api/v1/auth", service: "security" },
  { prefix: "/.well-known/jwks.json", service: "security" },
  { prefix: "/api/v1/products", service: "ecommerce" },
  { prefix: "/api/v1/carts", service: "ecommerce" },
  { prefix: "/api/v1/orders", service: "ecommerce" },
  { prefix: "/api/v1/inventory", service: "ecommerce" },
  { prefix: "/api/v1/webhooks", service: "ecommerce" },
  { prefix: "/api/v1/analytics", service: "ecommerce" },
  { prefix: "/api/v1/flash-sales", service: "ecommerce" },
  { prefix: "/api/v1/ecommerce", service: "ecommerce" },
  { prefix: "/graphql", service: "ecommerce" },
  { prefix: "/ws/orders", service: "ecommerce" },
  { prefix: "/ws/flash-sales", service: "ecommerce" },
  { prefix: "/sse", service: "ecommerce" },
  { prefix: "/api/v1/chat", service: "chat" },
  { prefix: "/ws/chat", service: "chat" },
  { prefix: "/api/v1/devices", service: "iot" },
  { prefix: "/api/v1/telemetry", service: "iot" },
  { prefix: "/api/v1/firmware", service: "iot" },
  { prefix: "/api/v1/posts", service: "social" },
  { prefix: "/api/v1/comments", service: "social" },
  { prefix: "/api/v1/feeds", service: "social" },
  { prefix: "/api/v1/ops", service: "ops" },
]);

const byLength = [...ROUTES].sort((a, b) => b.prefix.length - a.prefix.length);

/** The service for `pathname`, or undefined when no route matches. */
export function serviceForPath(pathname: string): ServiceName | undefined {
  for (const route of byLength) {
    if (pathname === route.prefix || pathname.startsWith(`${route.prefix}/`)) return route.service;
  }
  return undefined;
}
