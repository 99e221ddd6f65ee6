import assert from "node:assert/strict";
import { ChargeConflictError, createChargeLedger, declineReasonOf } from "./charge_ledger.ts";

const fixedRandom = () => 0.42;

Deno.test("declineReasonOf() declines amounts ending in .13 and above the limit, approves the rest", () => {
  assert.equal(declineReasonOf("129.50"), undefined);
  assert.equal(declineReasonOf("10000.00"), undefined);
  assert.match(declineReasonOf("10.13") ?? "", /ends in \.13/);
  assert.match(declineReasonOf("10000.01") ?? "", /exceeds the 10000\.00 limit/);
  assert.match(declineReasonOf("0.00") ?? "", /greater than zero/);
});

Deno.test("a repeated charge of one order returns the first result and moves money once", () => {
  const ledger = createChargeLedger({ random: fixedRandom });
  const first = ledger.charge({ orderId: "o-1", amount: "20.00", currency: "USD" });
  const again = ledger.charge({ orderId: "o-1", amount: "20.00", currency: "USD" });
  assert.equal(first.status, "APPROVED");
  assert.deepEqual(again, first);
  assert.equal(ledger.approved(), 1);
});

Deno.test("a declined charge is remembered and is not counted as money moved", () => {
  const ledger = createChargeLedger({ random: fixedRandom });
  const first = ledger.charge({ orderId: "o-2", amount: "5.13", currency: "EUR" });
  assert.equal(first.status, "DECLINED");
  assert.deepEqual(ledger.charge({ orderId: "o-2", amount: "5.13", currency: "EUR" }), first);
  assert.equal(ledger.approved(), 0);
});

Deno.test("charging a charged order with another amount is refused, not replayed", () => {
  const ledger = createChargeLedger({ random: fixedRandom });
  ledger.charge({ orderId: "o-3", amount: "20.00", currency: "USD" });
  assert.throws(
    () => ledger.charge({ orderId: "o-3", amount: "21.00", currency: "USD" }),
    (error) => error instanceof ChargeConflictError && /charged 20\.00 USD, not 21\.00 USD/.test(error.message),
  );
  assert.equal(ledger.approved(), 1);
});
