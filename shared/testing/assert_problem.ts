/** @module Test assertion: a promise rejects with a `ProblemError` (and, when given, that code). */
import assert from "node:assert/strict";
import { ProblemError } from "../contracts/problem.ts";

/** Awaits `promise`, asserts it rejected with a ProblemError (of `code` when given) and returns the error. */
export async function rejectsWithProblem(promise: Promise<unknown>, code?: string): Promise<ProblemError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ProblemError, `expected a ProblemError, got ${error}`);
    if (code !== undefined) assert.equal(error.code, code, error.message);
    return error;
  }
  throw new assert.AssertionError({ message: `Expected a rejection${code ? ` with ${code}` : ""}` });
}
