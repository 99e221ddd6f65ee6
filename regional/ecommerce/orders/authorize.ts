/**
 * @module
 * Applies the e-commerce policy table (shared/policies) to an order and turns a deny into a problem with a
 * message that says what to do. Another user's order is reported exactly like a missing one.
 */
import type { Principal } from "../../../shared/auth/mod.ts";
import { type ProblemCode, ProblemError } from "../../../shared/contracts/problem.ts";
import { decide, type EcommerceAction } from "../../../shared/policies/mod.ts";
import type { OrderHead } from "./order_store.ts";

const VERBS: Partial<Record<EcommerceAction, string>> = {
  "order.pay": "paid",
  "order.cancel": "canceled",
  "order.fulfil": "fulfilled",
};

/** The 404 for an order that does not exist or is not the caller's to see. */
export function orderNotFound(id: string): ProblemError {
  return new ProblemError(
    "ECOMMERCE.ORDER_NOT_FOUND",
    `Order "${id.slice(0, 64)}" does not exist; check the id or list your orders with GET /api/v1/orders?mine`,
  );
}

/** Throws the policy's problem unless `principal` may perform `action` on `order`. */
export function authorizeOrder(action: EcommerceAction, principal: Principal, order: OrderHead): void {
  const decision = decide(action, principal, { ownerId: order.userId, status: order.status });
  if (decision.allow) return;
  throw problemFor(decision.code, action, order);
}

function problemFor(code: ProblemCode, action: EcommerceAction, order: OrderHead): ProblemError {
  const verb = VERBS[action] ?? "changed";
  switch (code) {
    case "ECOMMERCE.ORDER_NOT_FOUND":
      return orderNotFound(order.id);
    case "ECOMMERCE.ORDER_NOT_CANCELABLE":
      return new ProblemError(
        code,
        `Order "${order.id}" is ${order.status} and cannot be canceled; only PENDING or RESERVED orders can be` +
          " canceled by a customer — contact support for a refund",
      );
    case "ECOMMERCE.ORDER_INVALID_TRANSITION":
      return new ProblemError(
        code,
        `Order "${order.id}" is ${order.status} and cannot be ${verb}; reload it to see what it needs next`,
      );
    case "AUTH.FORBIDDEN":
      return new ProblemError(
        code,
        action === "order.pay"
          ? `Only the customer who placed order "${order.id}" can pay it`
          : `Order "${order.id}" can be ${verb} only by an ADMIN`,
      );
    default:
      return new ProblemError(code, `You may not perform "${action}" on order "${order.id}"`);
  }
}
