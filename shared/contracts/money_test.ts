import assert from "node:assert/strict";
import fc from "fast-check";
import { formatMoney, multiplyMoney, parseMoney, sumMoney } from "./money.ts";

Deno.test("money is exact: 0.10 + 0.20 is 0.30 and 3 × 19.99 is 59.97", () => {
  assert.equal(sumMoney(["0.10", "0.20"]), "0.30");
  assert.equal(multiplyMoney("19.99", 3), "59.97");
  assert.equal(sumMoney([multiplyMoney("25.00", 2), multiplyMoney("79.50", 1)]), "129.50");
  assert.equal(formatMoney(parseMoney("-1.005")), "-1.01");
  assert.throws(() => parseMoney("1e3"), RangeError);
  assert.throws(() => parseMoney("12.34567"), RangeError);
});

Deno.test("money: formatting a parsed 2-digit amount gives it back (property)", () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 10n ** 12n - 1n }), fc.integer({ min: 0, max: 99 }), (whole, cents) => {
      const text = `${whole}.${String(cents).padStart(2, "0")}`;
      assert.equal(formatMoney(parseMoney(text)), text);
    }),
  );
});
