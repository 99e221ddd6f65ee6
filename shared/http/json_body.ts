/**
 * @module
 * Reads and validates a JSON request body with a zod schema. Every failure is a 4xx problem: a wrong
 * content type, a body over the limit, malformed JSON, or a value the schema rejects (unknown fields are
 * rejected when the schema is strict).
 */
import type { Context } from "hono";
import type { z } from "zod";
import { ProblemError } from "../contracts/problem.ts";

/** Bodies larger than this are refused before parsing. */
export const JSON_BODY_BYTES_MAX = 1024 * 1024;

const utf8 = new TextDecoder();

/** Parses `c`'s body as JSON and validates it against `schema`. */
export async function readJson<S extends z.ZodType>(
  c: Context,
  schema: S,
  options?: {
    readonly bytesMax?: number;
    /**
     * A hand-written check of the common shape, for hot routes: the parsed value, or undefined to let `schema`
     * decide (and word the error). It must accept only what `schema` accepts and return the same output.
     */
    readonly quickParse?: (value: unknown) => z.infer<S> | undefined;
  },
): Promise<z.infer<S>> {
  const bytesMax = options?.bytesMax ?? JSON_BODY_BYTES_MAX;
  const contentType = c.req.header("content-type") ?? "";
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(contentType)) {
    throw new ProblemError(
      "COMMON.UNSUPPORTED_MEDIA_TYPE",
      `Expected "application/json" but got "${contentType || "no content type"}"`,
    );
  }
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > bytesMax) {
    throw new ProblemError("COMMON.PAYLOAD_TOO_LARGE", `Body of ${declared} bytes exceeds ${bytesMax} bytes`);
  }
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength > bytesMax) {
    throw new ProblemError(
      "COMMON.PAYLOAD_TOO_LARGE",
      `Body of ${bytes.byteLength} bytes exceeds ${bytesMax} bytes`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch (error) {
    throw new ProblemError("COMMON.MALFORMED_JSON", `Body is not valid JSON: ${(error as Error).message}`);
  }
  const quick = options?.quickParse?.(value);
  if (quick !== undefined) return quick;
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const errors = parsed.error.issues.map((issue) => ({
      path: issue.path.map(String).join(".") || "(root)",
      message: issue.message,
    }));
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `Body failed validation: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
      { errors },
    );
  }
  return parsed.data;
}
