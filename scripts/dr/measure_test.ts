import assert from "node:assert/strict";
import { acknowledgedOrderIds, measureRto, outcomeCounts } from "./measure.ts";
import type { OrderAttempt } from "./order_load.ts";

const ok = (sentMs: number, doneMs: number, orderId: string): OrderAttempt => ({
  sentMs,
  doneMs,
  status: 201,
  orderId,
});
const failed = (sentMs: number, doneMs: number, status: number, code: string): OrderAttempt => ({
  sentMs,
  doneMs,
  status,
  code,
});

Deno.test("measureRto() is the gap between the last write before the failure and the first one sent after it", () => {
  const attempts = [
    ok(900, 950, "a"),
    ok(990, 1_020, "b"), // in flight at the failure (1000): answered late, does not count as recovery
    failed(1_100, 1_105, 503, "COMMON.UPSTREAM_UNAVAILABLE"),
    ok(3_000, 3_450, "c"),
    ok(3_100, 3_200, "d"),
  ];
  assert.deepEqual(measureRto(attempts, 1_000), {
    lastBeforeMs: 950,
    firstAfterMs: 3_200,
    rtoSec: 2.25,
    failureToFirstWriteSec: 2.2,
  });
});

Deno.test("measureRto() leaves RTO undefined when no write succeeded after the failure", () => {
  const result = measureRto([ok(0, 10, "a"), failed(20, 30, 0, "TimeoutError")], 15);
  assert.equal(result.rtoSec, undefined);
  assert.equal(result.failureToFirstWriteSec, undefined);
});

Deno.test("acknowledgedOrderIds() and outcomeCounts() count only 201s as acknowledged", () => {
  const attempts = [ok(0, 1, "a"), failed(0, 1, 503, "COMMON.UPSTREAM_UNAVAILABLE"), failed(0, 1, 0, "TimeoutError")];
  assert.deepEqual(acknowledgedOrderIds(attempts), ["a"]);
  assert.deepEqual(outcomeCounts(attempts), { "201": 1, "503 COMMON.UPSTREAM_UNAVAILABLE": 1, "0 TimeoutError": 1 });
});
