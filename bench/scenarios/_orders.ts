/**
 * @module
 * The order request every order scenario sends (`order_create`, `order_to_kafka`, `order_to_websocket`):
 * one item of one unit, the bench customer's JWT and a fresh Idempotency-Key, so each call is a new order.
 * Callers read the answer themselves: what they time around it differs.
 */
import type { EcommercePlatform } from "./_ecommerce_platform.ts";

/** Longest one order request may take before it counts as failed. */
const ORDER_REQUEST_TIMEOUT_MS = 10_000;

/** `POST /api/v1/orders` for one unit of `productId` on east's e-commerce deployable. */
export function postOrder(platform: EcommercePlatform, productId: string): Promise<Response> {
  return fetch(`${platform.ecommerceUrl}/api/v1/orders`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${platform.customerToken}`,
      "content-type": "application/json",
      "idempotency-key": crypto.randomUUID(),
    },
    body: JSON.stringify({ items: [{ productId, qty: 1 }] }),
    signal: AbortSignal.timeout(ORDER_REQUEST_TIMEOUT_MS),
  });
}
