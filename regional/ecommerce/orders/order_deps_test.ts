import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../../shared/config/config.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { RESERVATION_TTL_SEC_MAX, reserveStock } from "../inventory/mod.ts";
import { createMemoryStock, createScriptedPayments } from "./_test_doubles.ts";
import { orderContextOf, type OrderRoutesDeps } from "./order_deps.ts";

/** A SQL port no test statement may reach: every bound here is checked before SQL. */
const unreachableSql = {
  query: () => Promise.reject(new Error("no SQL expected")),
  exec: () => Promise.reject(new Error("no SQL expected")),
  transaction: () => Promise.reject(new Error("no SQL expected")),
  close: () => Promise.resolve(),
} as unknown as Sql;

function depsWith(reservationTtlSec: number | undefined): OrderRoutesDeps {
  return {
    sql: unreachableSql,
    verifier: {
      verify: () => Promise.reject(new Error("no token expected")),
    } as unknown as OrderRoutesDeps["verifier"],
    stock: createMemoryStock({}),
    payments: createScriptedPayments(),
    nudgeOutbox: () => {},
    ...(reservationTtlSec === undefined ? {} : { reservationTtlSec }),
  };
}

Deno.test("orderContextOf() refuses at setup a reservationTtlSec that inventory refuses on every order", async () => {
  // Inventory's own answer to one second more than its maximum: every order placed with it would fail (503).
  await assert.rejects(
    reserveStock(unreachableSql, {
      reservationId: crypto.randomUUID(),
      items: [{ productId: crypto.randomUUID(), qty: 1 }],
      ttlSec: RESERVATION_TTL_SEC_MAX + 1,
    }),
    (error: unknown) => {
      assert.ok(error instanceof ProblemError, String(error));
      assert.equal(error.code, "COMMON.VALIDATION_FAILED");
      assert.match(error.message, /ttlSec/);
      return true;
    },
  );
  for (const ttlSec of [RESERVATION_TTL_SEC_MAX + 1, 7_200, 86_400, 0, 1.5]) {
    assert.throws(() => orderContextOf(depsWith(ttlSec)), (error: unknown) => {
      assert.ok(error instanceof RangeError, String(error));
      assert.match(
        error.message,
        new RegExp(`reservationTtlSec must be an integer from 1 to ${RESERVATION_TTL_SEC_MAX}`),
      );
      return true;
    });
  }
  assert.equal(orderContextOf(depsWith(RESERVATION_TTL_SEC_MAX)).reservationTtlSec, RESERVATION_TTL_SEC_MAX);
  assert.equal(orderContextOf(depsWith(undefined)).reservationTtlSec, 900);
});

Deno.test("BV_RESERVATION_TTL_SEC above inventory's maximum stops the process at startup, naming the variable", () => {
  assert.equal(
    loadConfig({ BV_RESERVATION_TTL_SEC: String(RESERVATION_TTL_SEC_MAX) }).BV_RESERVATION_TTL_SEC,
    RESERVATION_TTL_SEC_MAX,
  );
  for (const value of [String(RESERVATION_TTL_SEC_MAX + 1), "7200", "86400"]) {
    assert.throws(() => loadConfig({ BV_RESERVATION_TTL_SEC: value }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.variable, "BV_RESERVATION_TTL_SEC");
      assert.match(
        error.message,
        new RegExp(`^Configuration error: BV_RESERVATION_TTL_SEC is malformed \\("${value}"\\): must be at most 3600`),
      );
      assert.ok(!error.message.includes("\n"));
      return true;
    });
  }
  // Every value the config accepts, the order context accepts too.
  const configured = loadConfig({ BV_RESERVATION_TTL_SEC: "3600" }).BV_RESERVATION_TTL_SEC;
  assert.equal(orderContextOf(depsWith(configured)).reservationTtlSec, configured);
});

Deno.test("orderContextOf() refuses a hold too short for a payment to finish in; the config's minimum fits", () => {
  // Default bounds: payment 30 s + inventory 5 s + 5 s of margin; the hold must be at least twice that.
  assert.throws(() => orderContextOf(depsWith(79)), /reservationTtlSec \(79\) must be at least 80 s/);
  assert.throws(
    () => orderContextOf({ ...depsWith(60), paymentTimeoutMs: 30_000 }),
    /reservationTtlSec \(60\) must be at least 80 s/,
  );
  assert.equal(
    orderContextOf({ ...depsWith(60), paymentTimeoutMs: 2_000, stockTimeoutMs: 2_000 }).reservationTtlSec,
    60,
  );
  const minimum = loadConfig({ BV_RESERVATION_TTL_SEC: "80" }).BV_RESERVATION_TTL_SEC;
  assert.equal(orderContextOf(depsWith(minimum)).reservationTtlSec, 80);
  assert.throws(
    () => loadConfig({ BV_RESERVATION_TTL_SEC: "79" }),
    /BV_RESERVATION_TTL_SEC is malformed \("79"\): must be at least 80/,
  );
});
