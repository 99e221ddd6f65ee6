/** The hand check of the order body accepts only what the schema accepts, with the schema's exact output. */
import assert from "node:assert/strict";
import { ORDER_LIMITS, placeOrderBody, quickPlaceOrderBody } from "./schemas.ts";

const A = "3F2504E0-4F89-41D3-9A0C-0305E82C3301";
const B = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

const BODIES: unknown[] = [
  { items: [{ productId: A, qty: 1 }] },
  { items: [{ qty: 2, productId: B }, { productId: A, qty: ORDER_LIMITS.qtyMax }] },
  { items: Array.from({ length: ORDER_LIMITS.itemsMax }, () => ({ productId: crypto.randomUUID(), qty: 3 })) },
  { items: Array.from({ length: ORDER_LIMITS.itemsMax + 1 }, () => ({ productId: crypto.randomUUID(), qty: 3 })) },
  { items: [] },
  { items: [{ productId: A, qty: 0 }] },
  { items: [{ productId: A, qty: 1.5 }] },
  { items: [{ productId: A, qty: "1" }] },
  { items: [{ productId: A, qty: ORDER_LIMITS.qtyMax + 1 }] },
  { items: [{ productId: A, qty: 1 }, { productId: A.toLowerCase(), qty: 1 }] },
  { items: [{ productId: "not-a-uuid", qty: 1 }] },
  // Version nibble 0: matches a loose 8-4-4-4-12 pattern but not z.uuid().
  { items: [{ productId: "3f2504e0-4f89-01d3-9a0c-0305e82c3301", qty: 1 }] },
  { items: [{ productId: A, qty: 1, note: "x" }] },
  { items: [{ productId: A, qty: 1 }], extra: true },
  { items: [[A, 1]] },
  { items: [null] },
  { items: {} },
  { cartId: B },
  JSON.parse(`{"items":[{"productId":"${A}","qty":1,"__proto__":{"x":1}}]}`),
  null,
  [],
  "items",
];

Deno.test("quickPlaceOrderBody() answers exactly what placeOrderBody parses, or leaves the body to it", () => {
  let quick = 0;
  for (const body of BODIES) {
    const fast = quickPlaceOrderBody(body);
    if (fast === undefined) continue;
    quick++;
    const parsed = placeOrderBody.safeParse(body);
    assert.ok(parsed.success, `the schema rejects a body the hand check accepted: ${JSON.stringify(body)}`);
    assert.deepStrictEqual(fast, parsed.data);
  }
  // The three valid item lists take the quick path; a cart checkout is left to the schema.
  assert.equal(quick, 3);
});
