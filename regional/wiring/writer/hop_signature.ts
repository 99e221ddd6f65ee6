/**
 * @module
 * The signed hop claim of a forwarded write. A replica region forwards a write to the writer region's ingress with
 * `x-bv-forwarded-from-region`; the writer answers such a write with its WAL position and a replica refuses one
 * (421, the loop guard). The ingress cannot drop that header (the region's own forwards pass through it), so the
 * claim is signed with the key every e-commerce and security process holds (`BV_INTERNAL_SIGNING_KEY`) and trusted only when
 * the signature verifies. The user's request itself is not covered: its token authenticates it, and its body is
 * streamed through, never buffered to be signed.
 *
 * The scheme is Standard Webhooks' (HMAC-SHA256 over `<id>.<timestamp>.<content>`, 5-minute window), with
 * `<method> <path> <from-region>` as the content and headers of our own (`x-bv-hop-*`), so a hop is never taken
 * for a partner webhook or the other way round. Signing and verifying reuse the webhook signer and the partner
 * kit's verifier (constant-time compare, bounded parsing), so there is no new crypto code here.
 */
import { type VerifyFailureCode, verifyWebhook } from "../../../partner-kit/mod.ts";
import { assertInternalSigningKey, INTERNAL_SIGNATURE_TOLERANCE_SEC } from "../../ecommerce/internal_signing.ts";
// E-commerce's leaves (this module moved here from orders/writer when security began forwarding too): the key rule
// every internal hop shares, and the webhook signer — all this needs of the delivery machinery, no new crypto code.
import { signatureHeaders } from "../../ecommerce/webhooks/signing.ts";

/** The region that forwarded a write; trusted only with a valid hop signature (see the module doc). */
export const FORWARDED_FROM_HEADER = "x-bv-forwarded-from-region";
/** A fresh id per hop (Standard Webhooks' `webhook-id`). */
export const HOP_ID_HEADER = "x-bv-hop-id";
/** Unix seconds at signing (Standard Webhooks' `webhook-timestamp`). */
export const HOP_TIMESTAMP_HEADER = "x-bv-hop-timestamp";
/** `v1,<base64 HMAC-SHA256>` (Standard Webhooks' `webhook-signature`). */
export const HOP_SIGNATURE_HEADER = "x-bv-hop-signature";
/** A hop signed longer ago (or further ahead) than this is not trusted: the window of every internal hop. */
export const HOP_SIGNATURE_TOLERANCE_SEC = INTERNAL_SIGNATURE_TOLERANCE_SEC;
/** A region name as a claim may carry it: no space, so the signed content splits one way only (contentOf). */
const REGION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** What a hop signature vouches for: this method and path, forwarded by `fromRegion`. */
export interface HopClaim {
  readonly method: string;
  /** The path as Hono routes it (`c.req.path`); the writer sees the same one. */
  readonly path: string;
  readonly fromRegion: string;
}

/** The claim of one request: none, one whose signature verifies, or one to treat as absent (and why). */
export type HopVerdict =
  | { readonly claimed: false }
  | { readonly claimed: true; readonly trusted: true; readonly fromRegion: string }
  | {
    readonly claimed: true;
    readonly trusted: false;
    readonly fromRegion: string;
    readonly code: VerifyFailureCode | "BAD_REGION";
    readonly reason: string;
  };

/** The key check of every internal hop (at setup). */
export const assertHopSigningKey = assertInternalSigningKey;

/** The headers of a forwarded write: the claim and its signature, fresh for each hop. */
export async function signedHopHeaders(
  claim: HopClaim,
  signingKey: string,
  at: { readonly hopId?: string; readonly timestampSec?: number } = {},
): Promise<Record<string, string>> {
  if (!REGION_NAME.test(claim.fromRegion)) throw new TypeError(`Cannot sign a hop from region "${claim.fromRegion}"`);
  const signed = await signatureHeaders(
    {
      webhookId: at.hopId ?? crypto.randomUUID(),
      timestampSec: at.timestampSec ?? Math.floor(Date.now() / 1000),
      body: contentOf(claim),
    },
    [signingKey],
  );
  return {
    [FORWARDED_FROM_HEADER]: claim.fromRegion,
    [HOP_ID_HEADER]: signed["webhook-id"],
    [HOP_TIMESTAMP_HEADER]: signed["webhook-timestamp"],
    [HOP_SIGNATURE_HEADER]: signed["webhook-signature"],
  };
}

/** Whether `request` claims to be a forwarded write, and whether that claim is signed with `signingKey`. */
export async function verifiedHopOf(
  request: { readonly method: string; readonly path: string; readonly headers: Headers },
  signingKey: string,
  now?: () => Date,
): Promise<HopVerdict> {
  const fromRegion = request.headers.get(FORWARDED_FROM_HEADER);
  if (fromRegion === null) return { claimed: false };
  if (!REGION_NAME.test(fromRegion)) {
    return { claimed: true, trusted: false, fromRegion, code: "BAD_REGION", reason: "The region is not a region name" };
  }
  const verdict = await verifyWebhook({
    // The verifier reads Standard Webhooks' names; ours are renamed on the way in (missing ones stay missing).
    headers: {
      "webhook-id": request.headers.get(HOP_ID_HEADER) ?? undefined,
      "webhook-timestamp": request.headers.get(HOP_TIMESTAMP_HEADER) ?? undefined,
      "webhook-signature": request.headers.get(HOP_SIGNATURE_HEADER) ?? undefined,
    },
    body: contentOf({ method: request.method, path: request.path, fromRegion }),
    secrets: [signingKey],
    toleranceSec: HOP_SIGNATURE_TOLERANCE_SEC,
    now,
  });
  if (verdict.ok) return { claimed: true, trusted: true, fromRegion };
  return { claimed: true, trusted: false, fromRegion, code: verdict.code, reason: verdict.reason };
}

/**
 * The signed content. The method has no space and the region (last) has none either (REGION_NAME), so a decoded
 * path with a space in it cannot be shifted into the region to make another claim; the path binds a signature to
 * the route it was made for.
 */
function contentOf(claim: HopClaim): string {
  return `${claim.method} ${claim.path} ${claim.fromRegion}`;
}
