/** The order scenarios' steady-state warm-up length: default, override, and refusal of what cannot work. */
import assert from "node:assert/strict";
import { ORDER_WARMUP_S_DEFAULT, orderWarmupSeconds } from "./_orders.ts";

function withWarmupEnv(value: string | undefined, run: () => void): void {
  const before = Deno.env.get("BV_BENCH_WARMUP_S");
  if (value === undefined) Deno.env.delete("BV_BENCH_WARMUP_S");
  else Deno.env.set("BV_BENCH_WARMUP_S", value);
  try {
    run();
  } finally {
    if (before === undefined) Deno.env.delete("BV_BENCH_WARMUP_S");
    else Deno.env.set("BV_BENCH_WARMUP_S", before);
  }
}

Deno.test("order warm-up: 30 s unless BV_BENCH_WARMUP_S says otherwise; 0 measures the cold platform", () => {
  withWarmupEnv(undefined, () => assert.equal(orderWarmupSeconds(), ORDER_WARMUP_S_DEFAULT));
  withWarmupEnv("", () => assert.equal(orderWarmupSeconds(), 30));
  withWarmupEnv("0", () => assert.equal(orderWarmupSeconds(), 0));
  withWarmupEnv("45", () => assert.equal(orderWarmupSeconds(), 45));
});

Deno.test("order warm-up: a length the 90 s scenario backstop cannot hold, or not whole seconds, is refused", () => {
  for (const value of ["46", "-1", "2.5", "soon"]) {
    withWarmupEnv(value, () => assert.throws(() => orderWarmupSeconds(), RangeError, value));
  }
});
