/**
 * @module
 * Signing of outgoing deliveries, with every secret that is valid right now (the current one and, during
 * a rotation's overlap, the previous one):
 *
 * - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<ts>.<body>")>`, space-separated
 *   when there are two;
 * - `X-BV-Signature: t=<ts>,v1=<hex HMAC-SHA256(key, "<ts>.<body>")>[,v1=<hex>]`.
 *
 * The key is the base64-decoded part of `whsec_<base64>`. The partner kit (`partner-kit/`) verifies both.
 */

/** The HMAC key of a `whsec_…` secret. */
export function keyBytesOf(secret: string): Uint8Array {
  if (!secret.startsWith("whsec_")) throw new TypeError('A webhook secret must start with "whsec_"');
  return Uint8Array.from(atob(secret.slice("whsec_".length)), (c) => c.charCodeAt(0));
}

/** A fresh secret: 32 random bytes (Standard Webhooks asks for 24 to 64), as `whsec_<base64>`. */
export function generateSecret(): string {
  return `whsec_${toBase64(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** The signature headers of one attempt of `body`, signed with each of `secrets` (current first). */
export async function signatureHeaders(
  input: { readonly webhookId: string; readonly timestampSec: number; readonly body: string },
  secrets: readonly string[],
): Promise<Record<string, string>> {
  if (secrets.length === 0) throw new RangeError("Cannot sign a delivery without a secret");
  const encoder = new TextEncoder();
  const standard: string[] = [];
  const bv: string[] = [];
  for (const secret of secrets) {
    const key = await crypto.subtle.importKey(
      "raw",
      keyBytesOf(secret) as Uint8Array<ArrayBuffer>,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const stdMac = await crypto.subtle.sign(
      "HMAC",
      key,
      encoder.encode(`${input.webhookId}.${input.timestampSec}.${input.body}`),
    );
    standard.push(`v1,${toBase64(new Uint8Array(stdMac))}`);
    const bvMac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${input.timestampSec}.${input.body}`));
    bv.push(`v1=${toHex(new Uint8Array(bvMac))}`);
  }
  return {
    "webhook-id": input.webhookId,
    "webhook-timestamp": String(input.timestampSec),
    "webhook-signature": standard.join(" "),
    "x-bv-signature": [`t=${input.timestampSec}`, ...bv].join(","),
  };
}

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
