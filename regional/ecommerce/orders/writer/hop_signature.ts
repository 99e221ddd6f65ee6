/**
 * @module
 * The signed hop claim of a forwarded write (`x-bv-forwarded-from-region` with `x-bv-hop-*`, signed with
 * `BV_INTERNAL_SIGNING_KEY`): shared with security's forwarded auth writes (`regional/wiring/writer/hop_signature.ts`).
 */
export {
  assertHopSigningKey,
  FORWARDED_FROM_HEADER,
  HOP_ID_HEADER,
  HOP_SIGNATURE_HEADER,
  HOP_SIGNATURE_TOLERANCE_SEC,
  HOP_TIMESTAMP_HEADER,
  type HopClaim,
  type HopVerdict,
  signedHopHeaders,
  verifiedHopOf,
} from "../../../wiring/writer/mod.ts";
