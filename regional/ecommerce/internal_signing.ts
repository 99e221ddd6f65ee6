/**
 * @module
 * The rules every signed hop between e-commerce processes shares (the forwarded sensor batch, the forwarded-write
 * claim): the key's form, checked at setup, and the window a signature stays valid in.
 */
import { secretBytes } from "../../partner-kit/mod.ts";

/** A signature older (or newer) than this is refused: Standard Webhooks' recommended window. */
export const INTERNAL_SIGNATURE_TOLERANCE_SEC = 300;
/** The key's least size, as the config checks it (Standard Webhooks asks for 24 to 64 bytes). */
const SIGNING_KEY_BYTES_MIN = 32;

/** Throws a TypeError unless `key` is `whsec_` and base64 of at least 32 bytes (`BV_INTERNAL_SIGNING_KEY`). */
export function assertInternalSigningKey(key: string): void {
  const bytes = key.startsWith("whsec_") ? secretBytes(key) : undefined;
  if (bytes === undefined || bytes.length < SIGNING_KEY_BYTES_MIN) {
    throw new TypeError(`signingKey must be "whsec_" and base64 of at least ${SIGNING_KEY_BYTES_MIN} bytes`);
  }
}
