/**
 * @module
 * Verifies the signatures BitVelocity puts on every webhook delivery. Standalone on purpose: it uses only
 * web-standard APIs (Web Crypto, TextEncoder, atob), so a partner can copy this one file into Deno, Node 20+,
 * Bun, a browser worker or an edge function.
 *
 * Two schemes are checked, with the same secret (`whsec_<base64>`, shown once when the subscription is
 * created or its secret rotated):
 *
 * - **Standard Webhooks** (https://www.standardwebhooks.com): headers `webhook-id`, `webhook-timestamp`
 *   (Unix seconds) and `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256>` over
 *   `<webhook-id>.<webhook-timestamp>.<raw body>`. {@linkcode verifyWebhook}.
 * - **X-BV-Signature**: `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=<hex>…]` over `<t>.<raw body>`.
 *   {@linkcode verifyBvSignature}. It signs no message id, so it vouches for no `webhook-id`: de-duplicate
 *   with the id {@linkcode verifyWebhook} returns.
 *
 * During a secret rotation BitVelocity signs with both the new and the previous secret, so a receiver that
 * still knows only one of them keeps verifying; pass every secret you hold in `secrets`.
 */

/** Replays outside this window are refused. @default 300 (5 minutes, as Standard Webhooks recommends) */
export const DEFAULT_TOLERANCE_SEC = 300;
/** Bounds that keep a hostile request from making verification expensive. */
const SIGNATURE_HEADER_CHARS_MAX = 4_096;
const SIGNATURES_MAX = 16;
const SECRETS_MAX = 8;
const WEBHOOK_ID_CHARS_MAX = 256;

/** The headers of the request: a `Headers` object or a plain record (names are matched case-insensitively). */
export type HeadersLike = Headers | Readonly<Record<string, string | string[] | undefined>>;

export interface VerifyOptions {
  readonly headers: HeadersLike;
  /** The raw request body exactly as received: never a re-serialised JSON object. */
  readonly body: string | Uint8Array;
  /** Every secret currently valid for this endpoint (`whsec_…`, or the bare base64 part). */
  readonly secrets: readonly string[];
  /** @default 300 */
  readonly toleranceSec?: number;
  /** The clock (tests pass a fixed one). @default () => new Date() */
  readonly now?: () => Date;
}

/** Why a delivery was refused: a stable `code` to branch on and a sentence to log. */
export type VerifyFailureCode =
  | "MISSING_HEADER"
  | "BAD_TIMESTAMP"
  | "TIMESTAMP_TOO_OLD"
  | "TIMESTAMP_TOO_NEW"
  | "BAD_SIGNATURE_HEADER"
  | "NO_MATCHING_SIGNATURE"
  | "BAD_SECRET";

/** A refused delivery. */
export interface VerifyFailure {
  readonly ok: false;
  readonly code: VerifyFailureCode;
  readonly reason: string;
}

/** The Standard Webhooks verdict: `webhookId` is covered by the signature, so it is safe to de-duplicate on. */
export type VerifyResult =
  | { readonly ok: true; readonly webhookId: string; readonly timestampSec: number }
  | VerifyFailure;

/**
 * The X-BV-Signature verdict. It carries no `webhookId`: that scheme signs only `<t>.<body>`, so the
 * `webhook-id` header beside it could have been changed by anyone.
 */
export type BvVerifyResult = { readonly ok: true; readonly timestampSec: number } | VerifyFailure;

/** Verifies the Standard Webhooks headers of one delivery. Never throws for a bad request; see the result. */
export async function verifyWebhook(options: VerifyOptions): Promise<VerifyResult> {
  const id = headerOf(options.headers, "webhook-id");
  const timestamp = headerOf(options.headers, "webhook-timestamp");
  const signature = headerOf(options.headers, "webhook-signature");
  if (!id) return fail("MISSING_HEADER", 'The "webhook-id" header is missing');
  if (!timestamp) return fail("MISSING_HEADER", 'The "webhook-timestamp" header is missing');
  if (!signature) return fail("MISSING_HEADER", 'The "webhook-signature" header is missing');
  if (id.length > WEBHOOK_ID_CHARS_MAX || id.includes(".")) {
    return fail("MISSING_HEADER", `The "webhook-id" header "${id.slice(0, 64)}" is not a valid message id`);
  }
  const time = checkTimestamp(timestamp, options);
  if (!time.ok) return time;
  if (signature.length > SIGNATURE_HEADER_CHARS_MAX) {
    return fail("BAD_SIGNATURE_HEADER", `The "webhook-signature" header is longer than ${SIGNATURE_HEADER_CHARS_MAX}`);
  }
  // Space-separated `<version>,<base64>`; versions other than v1 (v1a asymmetric, future ones) are skipped.
  const candidates: Uint8Array[] = [];
  for (const part of signature.split(" ").filter(Boolean).slice(0, SIGNATURES_MAX)) {
    const comma = part.indexOf(",");
    if (comma < 0 || part.slice(0, comma) !== "v1") continue;
    // An undecodable v1 signature is still a signature, one that matches nothing.
    candidates.push(fromBase64(part.slice(comma + 1)) ?? new Uint8Array());
  }
  if (candidates.length === 0) {
    return fail("BAD_SIGNATURE_HEADER", 'The "webhook-signature" header holds no "v1,<base64>" signature');
  }
  const signed = concat(utf8(`${id}.${timestamp}.`), bodyBytes(options.body));
  const matched = await anySecretMatches(options.secrets, signed, candidates);
  if (typeof matched === "object") return matched;
  if (!matched) {
    return fail("NO_MATCHING_SIGNATURE", "No signature matches any of your secrets: the body or headers were altered");
  }
  return { ok: true, webhookId: id, timestampSec: time.timestampSec };
}

/**
 * Verifies the `X-BV-Signature` header (`t=<unix seconds>,v1=<hex>[,v1=<hex>…]`) of one delivery. It proves
 * the body and the timestamp, not any message id (see {@linkcode BvVerifyResult}).
 */
export async function verifyBvSignature(options: VerifyOptions): Promise<BvVerifyResult> {
  const header = headerOf(options.headers, "x-bv-signature");
  if (!header) return fail("MISSING_HEADER", 'The "X-BV-Signature" header is missing');
  if (header.length > SIGNATURE_HEADER_CHARS_MAX) {
    return fail("BAD_SIGNATURE_HEADER", `The "X-BV-Signature" header is longer than ${SIGNATURE_HEADER_CHARS_MAX}`);
  }
  let timestamp: string | undefined;
  const candidates: Uint8Array[] = [];
  for (const part of header.split(",").slice(0, SIGNATURES_MAX + 1)) {
    const eq = part.indexOf("=");
    const [key, value] = [part.slice(0, eq).trim(), part.slice(eq + 1).trim()];
    if (key === "t") timestamp = value;
    else if (key === "v1" && /^[0-9a-f]{64}$/.test(value)) candidates.push(fromHex(value));
  }
  if (!timestamp) return fail("BAD_SIGNATURE_HEADER", 'The "X-BV-Signature" header has no "t=<unix seconds>"');
  if (candidates.length === 0) {
    return fail("BAD_SIGNATURE_HEADER", 'The "X-BV-Signature" header has no "v1=<64 hex digits>" signature');
  }
  const time = checkTimestamp(timestamp, options);
  if (!time.ok) return time;
  const signed = concat(utf8(`${timestamp}.`), bodyBytes(options.body));
  const matched = await anySecretMatches(options.secrets, signed, candidates);
  if (typeof matched === "object") return matched;
  if (!matched) {
    return fail("NO_MATCHING_SIGNATURE", "No X-BV-Signature matches any of your secrets: the body was altered");
  }
  return { ok: true, timestampSec: time.timestampSec };
}

/** Compares two byte strings in time that depends only on their length (which is public for HMACs). */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/** The HMAC key bytes of a secret: the base64 after an optional `whsec_` prefix. */
export function secretBytes(secret: string): Uint8Array | undefined {
  const bare = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  const bytes = fromBase64(bare);
  return bytes && bytes.length > 0 ? bytes : undefined;
}

async function anySecretMatches(
  secrets: readonly string[],
  signed: Uint8Array,
  candidates: readonly Uint8Array[],
): Promise<boolean | VerifyFailure> {
  if (secrets.length === 0 || secrets.length > SECRETS_MAX) {
    return fail("BAD_SECRET", `Pass 1 to ${SECRETS_MAX} secrets, got ${secrets.length}`);
  }
  let matched = false;
  for (const [index, secret] of secrets.entries()) {
    const key = secretBytes(secret);
    if (!key) return fail("BAD_SECRET", `Secret #${index + 1} is not "whsec_<base64>"; copy it again`);
    const expected = await hmacSha256(key, signed);
    // Every candidate is compared (no early exit), so timing does not reveal which one matched.
    for (const candidate of candidates) matched = timingSafeEqual(expected, candidate) || matched;
  }
  return matched;
}

function checkTimestamp(
  text: string,
  options: Pick<VerifyOptions, "toleranceSec" | "now">,
): { ok: true; timestampSec: number } | VerifyFailure {
  if (!/^\d{1,12}$/.test(text)) {
    return fail("BAD_TIMESTAMP", `The timestamp "${text.slice(0, 32)}" is not Unix seconds`);
  }
  const timestampSec = Number(text);
  const toleranceSec = options.toleranceSec ?? DEFAULT_TOLERANCE_SEC;
  const nowSec = Math.floor((options.now?.() ?? new Date()).getTime() / 1000);
  if (timestampSec < nowSec - toleranceSec) {
    return fail(
      "TIMESTAMP_TOO_OLD",
      `The timestamp ${timestampSec} is more than ${toleranceSec} s old: refusing a replay`,
    );
  }
  if (timestampSec > nowSec + toleranceSec) {
    return fail(
      "TIMESTAMP_TOO_NEW",
      `The timestamp ${timestampSec} is more than ${toleranceSec} s in the future: check your clock`,
    );
  }
  return { ok: true, timestampSec };
}

async function hmacSha256(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, data as Uint8Array<ArrayBuffer>));
}

function headerOf(headers: HeadersLike, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name) continue;
    return Array.isArray(value) ? value.join(" ") : value;
  }
  return undefined;
}

function fail(code: VerifyFailureCode, reason: string): VerifyFailure {
  return { ok: false, code, reason };
}

function fromBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) return undefined;
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function fromHex(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function bodyBytes(body: string | Uint8Array): Uint8Array {
  return typeof body === "string" ? utf8(body) : body;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
