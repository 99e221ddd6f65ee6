import assert from "node:assert/strict";
import { serviceForPath } from "./routes.ts";

Deno.test("serviceForPath() routes by whole path segments", () => {
  const cases: [string, string | undefined][] = [
    ["/api/v1/auth/login", "security"],
    ["/.well-known/jwks.json", "security"],
    ["/api/v1/products", "ecommerce"],
    ["/api/v1/products/42", "ecommerce"],
    ["/api/v1/productsx", undefined],
    ["/sse/orders/1", "ecommerce"],
    ["/ws/chat", "chat"],
    ["/api/v1/devices/d1/telemetry", "iot"],
    ["/api/v1/feeds/me", "social"],
    ["/api/v1/ops/event-types", "ops"],
    ["/", undefined],
    ["/api/v1", undefined],
  ];
  for (const [path, service] of cases) assert.equal(serviceForPath(path), service, path);
});
