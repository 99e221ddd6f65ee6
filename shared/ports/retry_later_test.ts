import assert from "node:assert/strict";
import { createPgliteSql } from "../adapters/pglite/mod.ts";
import { isDeterministicSqlFailure, RetryLaterError, retryLaterOnFailure } from "./retry_later.ts";
import { SqlError } from "./sql_values.ts";

const failWith = (error: unknown) => () => Promise.reject(error);

Deno.test("retryLaterOnFailure() makes an outage RetryLaterError and lets a failure that would recur count", async () => {
  // Outages: a lost connection, a deadlock, a driver error without SQLSTATE, Redis or RabbitMQ errors.
  for (
    const error of [
      new SqlError("connection lost", "08006"),
      new SqlError("deadlock", "40P01"),
      new SqlError("idle in transaction too long", "25P03"),
      new SqlError("transaction timeout", "25P04"),
      new Error("ECONNREFUSED"),
    ]
  ) {
    await assert.rejects(retryLaterOnFailure("Applying", failWith(error)), (e: unknown) => {
      assert.ok(e instanceof RetryLaterError, String(e));
      assert.equal((e as Error).cause, error);
      return true;
    });
  }
  // Failures of the statement itself: rethrown as they are (counted, then dead-lettered).
  for (
    const error of [
      new SqlError("bad text", "22P05"),
      new SqlError("duplicate", "23505"),
      new SqlError("syntax", "42601"),
      new SqlError("in failed transaction", "25P02"),
    ]
  ) {
    await assert.rejects(retryLaterOnFailure("Applying", failWith(error)), (e: unknown) => e === error);
  }
  const held = new Error("held back");
  await assert.rejects(retryLaterOnFailure("Applying", failWith(held), (e) => e === held), (e: unknown) => e === held);
  assert.equal(await retryLaterOnFailure("Applying", () => Promise.resolve(7)), 7);
});

Deno.test({
  name: "[pglite] a NUL in jsonb is a deterministic SQL failure (22P05), so it is not retried forever",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    try {
      const error = await sql.query`select ${JSON.stringify({ reason: "a\u0000b" })}::text::jsonb as j`.then(
        () => undefined,
        (e) => e,
      );
      assert.ok(error instanceof SqlError, String(error));
      assert.equal(error.code, "22P05");
      assert.ok(isDeterministicSqlFailure(error));
    } finally {
      await sql.close();
    }
  },
});
