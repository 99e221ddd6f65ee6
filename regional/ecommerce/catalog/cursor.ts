/**
 * @module
 * The opaque keyset cursor of `GET /api/v1/products`: base64url of `{"v":1,"sku":"<last sku>"}`. Products
 * are listed in sku order (unique and never changing), so a page boundary is stable while products are added:
 * nothing is skipped or repeated across pages.
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";

const CURSOR_VERSION = 1;
/** A cursor only ever holds a real sku; anything else (NUL, megabytes) is refused before SQL sees it. */
const SKU = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Encodes the position after `sku`. */
export function encodeCursor(sku: string): string {
  const bytes = new TextEncoder().encode(JSON.stringify({ v: CURSOR_VERSION, sku }));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes a cursor from {@linkcode encodeCursor}; anything else is a 400 problem. */
export function decodeCursor(cursor: string): string {
  const invalid = () =>
    new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `Cursor "${cursor.slice(0, 64)}" is not valid; pass the nextCursor of a previous page unchanged`,
    );
  if (!/^[A-Za-z0-9_-]{1,512}$/.test(cursor)) throw invalid();
  let value: unknown;
  try {
    const binary = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    value = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0))),
    );
  } catch {
    throw invalid();
  }
  const decoded = value as { v?: unknown; sku?: unknown } | null;
  if (decoded?.v !== CURSOR_VERSION || typeof decoded.sku !== "string" || !SKU.test(decoded.sku)) throw invalid();
  return decoded.sku;
}
