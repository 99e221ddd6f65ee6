import assert from "node:assert/strict";
import fc from "fast-check";
import { applyRevenueEvent, type OrderRevenueState, type RevenueEvent, windowStartOf } from "./revenue_rules.ts";

const T = (iso: string) => new Date(iso);
const paid = (at: string, units = 1_295_000n, eventId = "p"): RevenueEvent => ({
  kind: "paid",
  eventId,
  orderId: "o-1",
  amountUnits: units,
  currency: "USD",
  at: T(at),
});
const canceled = (at: string, eventId = "c"): RevenueEvent => ({
  kind: "canceled",
  eventId,
  orderId: "o-1",
  at: T(at),
});

/** Applies events in order; resolves with the net units and orders per "window currency". */
function fold(events: readonly RevenueEvent[]): Map<string, { units: bigint; orders: number }> {
  let state: OrderRevenueState = {};
  const windows = new Map<string, { units: bigint; orders: number }>();
  for (const event of events) {
    const outcome = applyRevenueEvent(state, event);
    state = outcome.state;
    for (const d of outcome.deltas) {
      const key = `${d.windowStart.toISOString()} ${d.currency}`;
      const w = windows.get(key) ?? { units: 0n, orders: 0 };
      windows.set(key, { units: w.units + d.revenueUnits, orders: w.orders + d.orders });
    }
  }
  for (const [key, w] of windows) if (w.units === 0n && w.orders === 0) windows.delete(key);
  return windows;
}

Deno.test("windowStartOf() is the UTC minute of the event", () => {
  assert.equal(windowStartOf(T("2025-03-01T10:07:59.999Z")).toISOString(), "2025-03-01T10:07:00.000Z");
  assert.equal(windowStartOf(T("2025-03-01T12:07:30+02:00")).toISOString(), "2025-03-01T10:07:00.000Z");
});

Deno.test("a payment counts in its minute and a cancel after it subtracts in the cancel's minute", () => {
  const windows = fold([paid("2025-03-01T10:00:10Z"), canceled("2025-03-01T10:05:00Z")]);
  assert.deepEqual(Object.fromEntries(windows), {
    "2025-03-01T10:00:00.000Z USD": { units: 1_295_000n, orders: 1 },
    "2025-03-01T10:05:00.000Z USD": { units: -1_295_000n, orders: -1 },
  });
});

Deno.test("an order canceled before it was paid contributes nothing", () => {
  assert.equal(fold([canceled("2025-03-01T10:00:00Z")]).size, 0);
  // Impossible in the lifecycle, but with skewed clocks: a cancel timed before the payment undoes it.
  assert.equal(fold([paid("2025-03-01T10:05:00Z"), canceled("2025-03-01T10:00:00Z")]).size, 0);
  assert.equal(fold([canceled("2025-03-01T10:00:00Z"), paid("2025-03-01T10:05:00Z")]).size, 0);
});

Deno.test("a second paid or canceled event of the same order changes nothing", () => {
  let state: OrderRevenueState = {};
  state = applyRevenueEvent(state, paid("2025-03-01T10:00:00Z")).state;
  const again = applyRevenueEvent(state, paid("2025-03-01T10:01:00Z", 999n, "p2"));
  assert.equal(again.changed, false);
  assert.deepEqual(again.deltas, []);
  state = applyRevenueEvent(state, canceled("2025-03-01T10:02:00Z")).state;
  assert.equal(applyRevenueEvent(state, canceled("2025-03-01T10:03:00Z", "c2")).changed, false);
});

Deno.test("the windows do not depend on the order in which an order's events arrive (property)", () => {
  const minute = fc.integer({ min: 0, max: 30 }).map((m) => new Date(Date.UTC(2025, 2, 1, 10, m)).toISOString());
  const event = fc.oneof(
    fc.record({ kind: fc.constant("paid" as const), at: minute, units: fc.bigInt({ min: 0n, max: 10n ** 12n }) }),
    fc.record({ kind: fc.constant("canceled" as const), at: minute }),
  );
  fc.assert(
    fc.property(fc.array(event, { maxLength: 4 }), fc.func(fc.integer()), (raw, rank) => {
      const events = raw.map((e, i) => e.kind === "paid" ? paid(e.at, e.units, `p${i}`) : canceled(e.at, `c${i}`));
      // Any two deliveries agree on which event of each kind comes first (Kafka keeps a topic's key order).
      const firstPaid = events.find((e) => e.kind === "paid");
      const firstCanceled = events.find((e) => e.kind === "canceled");
      const firsts = [firstPaid, firstCanceled].filter((e) => e !== undefined);
      const shuffled = [...firsts].sort((a, b) => rank(a.eventId) - rank(b.eventId));
      const rest = events.filter((e) => !firsts.includes(e));
      assert.deepEqual(fold([...shuffled, ...rest]), fold([...firsts, ...rest]));
    }),
    { seed: 20250301, numRuns: 300 },
  );
});
