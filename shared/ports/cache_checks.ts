/**
 * @module
 * The argument checks every {@linkcode Cache} adapter makes, in one place, so the memory cache and Redis refuse
 * the same caller bugs with the same messages (the shared contract suite asserts them on both).
 */
import type { VersionMark } from "./cache.ts";

/** A TTL as Redis's PX takes it: a positive safe integer of milliseconds; anything else is a caller bug. */
export function validTtlMs(ttlMs: number): number {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`Cache ttlMs must be a positive integer number of milliseconds, got ${ttlMs}`);
  }
  return ttlMs;
}

/** A mark guarding `keys`; a mark among the keys it guards is a bug. */
export function validMark(keys: readonly string[], mark: VersionMark): { version: number; markTtlMs: number } {
  if (!Number.isSafeInteger(mark.version) || mark.version < 0) {
    throw new RangeError(`Cache mark version must be a non-negative safe integer, got ${mark.version}`);
  }
  if (keys.includes(mark.markKey)) {
    throw new RangeError(`Cache mark key "${mark.markKey}" must differ from the keys it guards; use e.g. "<key>:v"`);
  }
  return { version: mark.version, markTtlMs: validTtlMs(mark.markTtlMs) };
}

/** A versioned fill of `key`: its mark and its own TTL. */
export function validFill(
  key: string,
  fill: VersionMark & { readonly ttlMs: number },
): { version: number; markTtlMs: number; ttlMs: number } {
  return { ...validMark([key], fill), ttlMs: validTtlMs(fill.ttlMs) };
}
