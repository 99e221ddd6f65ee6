import assert from "node:assert/strict";
import {
  decide,
  ECOMMERCE_ACTIONS,
  ECOMMERCE_POLICY,
  type EcommerceAction,
  MUTATIONS,
  ORDER_STATUSES,
  type OrderStatus,
  type Subject,
} from "./mod.ts";

const alice: Subject = { userId: "alice", roles: ["CUSTOMER"] };
const bob: Subject = { userId: "bob", roles: ["CUSTOMER"] };
const admin: Subject = { userId: "root", roles: ["ADMIN"] };
const anonymous: Subject = null;
const alicesOrder = (status: OrderStatus) => ({ ownerId: "alice", status });

type Case = [string, EcommerceAction, Subject, { ownerId?: string; status?: OrderStatus }, string];

// Expected outcome: "allow" or the problem code of the deny.
const cases: Case[] = [
  ["a customer may create an order", "order.create", alice, {}, "allow"],
  ["an anonymous caller may not create an order", "order.create", anonymous, {}, "AUTH.UNAUTHENTICATED"],
  ["the owner reads their order", "order.read", alice, alicesOrder("PAID"), "allow"],
  ["an admin reads any order", "order.read", admin, alicesOrder("PAID"), "allow"],
  ["another customer does not see the order", "order.read", bob, alicesOrder("PAID"), "ECOMMERCE.ORDER_NOT_FOUND"],
  ["an anonymous caller reads nothing", "order.read", anonymous, alicesOrder("PAID"), "AUTH.UNAUTHENTICATED"],
  ["the owner cancels a PENDING order", "order.cancel", alice, alicesOrder("PENDING"), "allow"],
  ["the owner cancels a RESERVED order", "order.cancel", alice, alicesOrder("RESERVED"), "allow"],
  [
    "the owner cannot cancel a PAID order",
    "order.cancel",
    alice,
    alicesOrder("PAID"),
    "ECOMMERCE.ORDER_NOT_CANCELABLE",
  ],
  [
    "the owner cannot cancel a FULFILLED order",
    "order.cancel",
    alice,
    alicesOrder("FULFILLED"),
    "ECOMMERCE.ORDER_NOT_CANCELABLE",
  ],
  [
    "the owner cannot cancel twice",
    "order.cancel",
    alice,
    alicesOrder("CANCELED"),
    "ECOMMERCE.ORDER_NOT_CANCELABLE",
  ],
  ["another customer cannot cancel", "order.cancel", bob, alicesOrder("PENDING"), "ECOMMERCE.ORDER_NOT_FOUND"],
  ["an admin cancels a PAID order", "order.cancel", admin, alicesOrder("PAID"), "allow"],
  ["an admin cancels a PENDING order", "order.cancel", admin, alicesOrder("PENDING"), "allow"],
  [
    "an admin cannot cancel a FULFILLED order",
    "order.cancel",
    admin,
    alicesOrder("FULFILLED"),
    "ECOMMERCE.ORDER_NOT_CANCELABLE",
  ],
  ["an anonymous caller cannot cancel", "order.cancel", anonymous, alicesOrder("PENDING"), "AUTH.UNAUTHENTICATED"],
  ["the owner pays a RESERVED order", "order.pay", alice, alicesOrder("RESERVED"), "allow"],
  [
    "the owner cannot pay a PENDING order",
    "order.pay",
    alice,
    alicesOrder("PENDING"),
    "ECOMMERCE.ORDER_INVALID_TRANSITION",
  ],
  ["the owner cannot pay twice", "order.pay", alice, alicesOrder("PAID"), "ECOMMERCE.ORDER_INVALID_TRANSITION"],
  ["another customer cannot pay", "order.pay", bob, alicesOrder("RESERVED"), "ECOMMERCE.ORDER_NOT_FOUND"],
  ["an admin cannot pay for a customer", "order.pay", admin, alicesOrder("RESERVED"), "AUTH.FORBIDDEN"],
  ["an admin fulfils a PAID order", "order.fulfil", admin, alicesOrder("PAID"), "allow"],
  [
    "an admin cannot fulfil a RESERVED order",
    "order.fulfil",
    admin,
    alicesOrder("RESERVED"),
    "ECOMMERCE.ORDER_INVALID_TRANSITION",
  ],
  ["the owner cannot fulfil", "order.fulfil", alice, alicesOrder("PAID"), "AUTH.FORBIDDEN"],
  ["another customer cannot fulfil", "order.fulfil", bob, alicesOrder("PAID"), "AUTH.FORBIDDEN"],
  ["the owner reads their cart", "cart.read", alice, { ownerId: "alice" }, "allow"],
  ["the owner changes their cart", "cart.mutate", alice, { ownerId: "alice" }, "allow"],
  ["another customer does not see the cart", "cart.read", bob, { ownerId: "alice" }, "ECOMMERCE.CART_NOT_FOUND"],
  ["an admin does not see a customer's cart", "cart.read", admin, { ownerId: "alice" }, "ECOMMERCE.CART_NOT_FOUND"],
  ["another customer cannot fill the cart", "cart.mutate", bob, { ownerId: "alice" }, "ECOMMERCE.CART_NOT_FOUND"],
  ["an admin changes a price", "product.price.change", admin, {}, "allow"],
  ["a customer cannot change a price", "product.price.change", alice, {}, "AUTH.FORBIDDEN"],
  ["an anonymous caller cannot change a price", "product.price.change", anonymous, {}, "AUTH.UNAUTHENTICATED"],
];

for (const [name, action, subject, resource, expected] of cases) {
  Deno.test(`decide(): ${name}`, () => {
    const decision = decide(action, subject, resource);
    assert.equal(decision.allow ? "allow" : decision.code, expected);
  });
}

Deno.test("decide(): every mutation without a valid JWT is denied as unauthenticated, in every status", () => {
  for (const action of MUTATIONS) {
    for (const status of [undefined, ...ORDER_STATUSES]) {
      const decision = decide(action, null, { ownerId: "alice", status });
      assert.equal(decision.allow ? "allow" : decision.code, "AUTH.UNAUTHENTICATED", `${action} ${status}`);
    }
  }
});

Deno.test("decide(): a customer never gains access to another user's order or cart in any status", () => {
  const privateActions: EcommerceAction[] = ["order.read", "order.pay", "order.cancel", "cart.read", "cart.mutate"];
  for (const action of privateActions) {
    for (const status of ORDER_STATUSES) {
      const decision = decide(action, bob, { ownerId: "alice", status });
      assert.equal(decision.allow, false, `${action} ${status}`);
      if (!decision.allow) assert.match(decision.code, /NOT_FOUND$/, `${action} ${status}`);
    }
  }
});

Deno.test("decide(): a customer may cancel only PENDING or RESERVED orders of their own", () => {
  const cancelable = ORDER_STATUSES.filter((status) => decide("order.cancel", alice, alicesOrder(status)).allow);
  assert.deepEqual(cancelable, ["PENDING", "RESERVED"]);
  const adminCancelable = ORDER_STATUSES.filter((status) => decide("order.cancel", admin, alicesOrder(status)).allow);
  assert.deepEqual(adminCancelable, ["PENDING", "RESERVED", "PAID"]);
});

Deno.test("decide(): every action is covered by the table and nothing falls through to the default", () => {
  const subjects: Subject[] = [alice, bob, admin, anonymous];
  for (const action of ECOMMERCE_ACTIONS) {
    assert.ok(ECOMMERCE_POLICY.some((r) => r.action === action || (r.action as string[]).includes?.(action)), action);
    for (const subject of subjects) {
      for (const status of [undefined, ...ORDER_STATUSES]) {
        const decision = decide(action, subject, { ownerId: "alice", status });
        if (!decision.allow) assert.doesNotMatch(decision.reason, /^No rule/, `${action} ${subject?.userId} ${status}`);
      }
    }
  }
});

Deno.test("decide(): an empty table denies everything (fail closed)", () => {
  const decision = decide("order.read", admin, alicesOrder("PAID"), []);
  assert.equal(decision.allow, false);
  if (!decision.allow) assert.equal(decision.code, "AUTH.FORBIDDEN");
});
