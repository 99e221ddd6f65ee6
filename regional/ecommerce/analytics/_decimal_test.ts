import assert from "node:assert/strict";
import { decimalText, decimalTextOfUnits, unitsOfDecimal } from "./_decimal.ts";

Deno.test("decimalText() trims numeric text to at least two fraction digits and keeps the sign", () => {
  assert.equal(decimalText("129.5000"), "129.50");
  assert.equal(decimalText("0.1230"), "0.123");
  assert.equal(decimalText("-0.5000"), "-0.50");
  assert.equal(decimalText("-0.0000"), "0.00");
  assert.equal(decimalText("42"), "42.00");
  assert.equal(decimalText("00012.3"), "12.30");
  assert.throws(() => decimalText("12,30"), /not decimal text/);
});

Deno.test("decimalTextOfUnits() and unitsOfDecimal() round-trip exactly, beyond float precision", () => {
  assert.equal(decimalTextOfUnits(1_295_000n), "129.50");
  assert.equal(decimalTextOfUnits(-5n), "-0.0005");
  const big = 123_456_789_012_345_678n;
  assert.equal(unitsOfDecimal(decimalTextOfUnits(big)), big);
  assert.equal(unitsOfDecimal("-12.34"), -123_400n);
});
