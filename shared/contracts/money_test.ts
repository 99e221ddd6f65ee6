import assert from "node:assert/strict";
import fc from "fast-check";
import { AMOUNT_MAX_UNITS, formatMoney, multiplyMoney, multiplyMoneyUnits, parseMoney, sumMoney } from "./money.ts";

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

Deno.test("multiplyMoneyUnits() is exact past 12 integer digits, so large totals are summed without re-parsing", () => {
  const line = multiplyMoneyUnits("9999999999.99", 1000);
  assert.equal(formatMoney(line), "9999999999990.00");
  assert.equal(formatMoney(line + multiplyMoneyUnits("0.01", 1)), "9999999999990.01");
  assert.ok(line > AMOUNT_MAX_UNITS);
  assert.equal(formatMoney(AMOUNT_MAX_UNITS), "9999999999.99");
  assert.equal(multiplyMoney("9999999999.99", 1000), "9999999999990.00");
  // Why totals are summed in units: a formatted line total of 13 integer digits does not parse again.
  assert.throws(() => sumMoney([multiplyMoney("9999999999.99", 1000)]), RangeError);
  assert.throws(() => multiplyMoneyUnits("1.00", 1.5), RangeError);
});
