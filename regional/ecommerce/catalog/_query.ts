/** @module Validates URL query parameters with a zod schema; failures are 400 problems like bodies. */
import type { Context } from "hono";
import type { z } from "zod";
import { ProblemError } from "../../../shared/contracts/problem.ts";

/** Parses `c`'s query string (last value wins for repeated names) against `schema`. */
export function readQuery<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  const parsed = schema.safeParse(c.req.query());
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(query)",
    message: issue.message,
  }));
  throw new ProblemError(
    "COMMON.VALIDATION_FAILED",
    `Query failed validation: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
    { errors },
  );
}
