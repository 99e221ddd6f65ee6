/**
 * @module
 * `Idempotency-Key` for unsafe requests (IETF httpapi idempotency-key draft, Stripe semantics), as a Hono
 * middleware over the SQL port. It runs after `requireAuth`: keys are scoped per user.
 *
 * - No key → 400 `ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED`.
 * - First use → the request runs; its response (status, headers, body) is stored for 24 h.
 * - Same key, same request (SHA-256 of method, path and canonical body) → the stored response, byte for
 *   byte, plus `Idempotent-Replayed: true`.
 * - Same key, different request → 422 `ECOMMERCE.IDEMPOTENCY_KEY_REUSED`.
 * - Same key while the first request still runs → 409 `ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT`.
 * - A 5xx (or a thrown error) is not stored: the key is released so the client may retry with it.
 * - An expired key, or an in-flight claim older than the lease (its process died), counts as new.
 */
import { createHash } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import type { AuthEnv } from "../../../shared/auth/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { errorToResponse, JSON_BODY_BYTES_MAX } from "../../../shared/http/mod.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { deleteInBatches, type PurgeBounds } from "../../../shared/ports/sql_purge.ts";

export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";
export const IDEMPOTENT_REPLAYED_HEADER = "idempotent-replayed";

/** Keys are 1..255 printable ASCII characters (a UUID v4 is the recommended value). */
export const IDEMPOTENCY_KEY_CHARS_MAX = 255;
const PRINTABLE = /^[\x20-\x7e]+$/;

/** Responses larger than this are not stored (the key is released), so one request cannot bloat the table. */
export const STORED_RESPONSE_BYTES_MAX = 256 * 1024;

/** Headers never stored: the outer shell sets them per response. */
const UNSTORED_HEADERS = new Set(["date", "correlation-id", "content-length", "transfer-encoding", "connection"]);

export interface IdempotencyOptions {
  readonly sql: Sql;
  /** How long a stored response is replayed; a later use of the key counts as new. @default 24 h */
  readonly ttlMs?: number;
  /**
   * How long an in-flight claim blocks its key. A process that dies mid-request leaves its claim behind;
   * after the lease the key may be claimed again. Longer than any request may take. @default 120_000
   */
  readonly inFlightLeaseMs?: number;
  /** Whose key space a request uses. @default the principal's userId */
  readonly scopeOf?: (c: Context<AuthEnv>) => string;
  /** Injected clock. @default () => new Date() */
  readonly now?: () => Date;
}

/**
 * The request's claim on its key, for a handler whose effect must survive a crash: it records its effect
 * (`effect_ref`, for example an order id) on the claim row in the effect's own statement, so that when the
 * client retries after the process died mid-request and the lease ran out, the new claim carries
 * `priorEffect` and the handler answers that effect instead of doing it twice.
 */
export interface IdempotencyClaim {
  readonly scope: string;
  readonly key: string;
  readonly started: Date;
  /** The effect recorded by an earlier holder of this claim (same request) that did not finish, or null. */
  readonly priorEffect: string | null;
}

/** The Hono env of a route behind {@link idempotencyMiddleware}. */
export type IdempotentEnv = AuthEnv & { Variables: { idempotency: IdempotencyClaim } };

interface KeyRow extends Record<string, unknown> {
  request_hash: string;
  status: "in_flight" | "completed";
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  created_at: Date;
}

/** Creates the middleware; throws at setup when the options are wrong. */
export function idempotencyMiddleware(options: IdempotencyOptions): MiddlewareHandler<IdempotentEnv> {
  if (typeof options?.sql?.query !== "function") {
    throw new TypeError("idempotencyMiddleware requires options.sql (the SQL port)");
  }
  const ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000;
  const leaseMs = options.inFlightLeaseMs ?? 120_000;
  if (!(ttlMs > 0 && leaseMs > 0 && leaseMs <= ttlMs)) {
    throw new RangeError(`idempotencyMiddleware needs 0 < inFlightLeaseMs (${leaseMs}) <= ttlMs (${ttlMs})`);
  }
  const now = options.now ?? (() => new Date());
  const scopeOf = options.scopeOf ?? ((c: Context<AuthEnv>) => {
    const principal = c.get("principal");
    if (!principal) throw new Error("idempotencyMiddleware must run after requireAuth (no principal)");
    return principal.userId;
  });
  const { sql } = options;

  return async (c, next) => {
    const instance = new URL(c.req.url).pathname;
    let key: string;
    let requestHash: string;
    try {
      key = keyOf(c.req.header(IDEMPOTENCY_KEY_HEADER));
      // Hono's percent-decoded path: `/api/v1/%6Frders` is the same request as `/api/v1/orders` (it reaches
      // the same route), so it must hash the same and be replayed, not refused as a reused key.
      requestHash = await requestHashOf(c, c.req.path);
    } catch (error) {
      return errorToResponse(error, instance);
    }
    const scope = scopeOf(c as unknown as Context<AuthEnv>);
    const started = now();
    const claimed = await claim(sql, { scope, key, requestHash, started, ttlMs, leaseMs });
    if (claimed === undefined) {
      const existing = await sql.query<KeyRow>`
        select request_hash, status, response_status, response_headers, response_body, created_at
        from idempotency_keys where user_id = ${scope} and key = ${key}`;
      // Gone in between (released after a 5xx): one more claim attempt would race again; let the client retry.
      const row = existing[0];
      if (!row) return errorToResponse(inFlight(key), instance);
      if (row.request_hash !== requestHash) {
        return errorToResponse(
          new ProblemError(
            "ECOMMERCE.IDEMPOTENCY_KEY_REUSED",
            `Idempotency-Key "${key}" was used for a different request; use a new key for a new request`,
          ),
          instance,
        );
      }
      if (row.status === "in_flight") return errorToResponse(inFlight(key), instance);
      return replay(row);
    }

    // Our claim is (scope, key, started): a request that outlived its lease must not touch a newer claim.
    const ours = { scope, key, started };
    c.set("idempotency", { ...ours, priorEffect: claimed.priorEffect });
    try {
      await next();
    } catch (error) {
      await release(sql, ours);
      throw error;
    }
    const response = c.res;
    // Read once and answered from the text: `clone()` would tee the body into two streams, and the answer
    // would then go out as a stream instead of one buffer. Clearing `c.res` first keeps Hono from wrapping the
    // new response around the old one's headers (they are copied here already).
    let body = "";
    if (response.body !== null) {
      body = await response.text();
      const rebuilt = new Response(body, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
      // A string body adds "text/plain" where the handler set no content type: keep its headers exact.
      if (!response.headers.has("content-type")) rebuilt.headers.delete("content-type");
      c.res = undefined as unknown as Response;
      c.res = rebuilt;
    }
    // A handler's ProblemError arrives here already rendered (c.error is set for 4xx too): status decides.
    if (response.status >= 500 || tooLargeToStore(body)) {
      await release(sql, ours);
      return undefined;
    }
    try {
      await sql.query`
        update idempotency_keys
        set status = 'completed', response_status = ${response.status},
            response_headers = ${storedHeadersOf(response.headers)}, response_body = ${body}
        where user_id = ${scope} and key = ${key} and created_at = ${started} and status = 'in_flight'`;
    } catch (error) {
      // The work is done: answer it. The claim stays in flight (409) until its lease runs out.
      log.error("could not store an idempotent response", { key, error: String(error) });
    }
    return undefined;
  };
}

function inFlight(key: string): ProblemError {
  return new ProblemError(
    "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT",
    `A request with Idempotency-Key "${key}" is still being processed; retry after it completes`,
    { headers: { "retry-after": "1" } },
  );
}

/**
 * Parses the header. The draft defines the value as a Structured Field string (`"…"`); bare tokens as sent
 * by Stripe-style clients are accepted too, and both spellings name the same key.
 */
function keyOf(header: string | undefined): string {
  if (header === undefined || header.trim() === "") {
    throw new ProblemError(
      "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED",
      'Send an "Idempotency-Key" header (for example a random UUID) so a retried request is not applied twice',
    );
  }
  const trimmed = header.trim();
  const key = trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed;
  if (key.length < 1 || key.length > IDEMPOTENCY_KEY_CHARS_MAX || !PRINTABLE.test(key)) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `Idempotency-Key must be 1 to ${IDEMPOTENCY_KEY_CHARS_MAX} printable ASCII characters; send a random UUID`,
    );
  }
  return key;
}

/** SHA-256 over method, path and the canonical body (JSON with sorted keys; other bodies as sent). */
async function requestHashOf(c: Context, pathname: string): Promise<string> {
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > JSON_BODY_BYTES_MAX) {
    throw new ProblemError(
      "COMMON.PAYLOAD_TOO_LARGE",
      `Body of ${declared} bytes exceeds ${JSON_BODY_BYTES_MAX} bytes`,
    );
  }
  // Hono caches the body, so the route handler can still read it after this.
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength > JSON_BODY_BYTES_MAX) {
    throw new ProblemError(
      "COMMON.PAYLOAD_TOO_LARGE",
      `Body of ${bytes.byteLength} bytes exceeds ${JSON_BODY_BYTES_MAX} bytes`,
    );
  }
  // node:crypto hashes synchronously; WebCrypto's digest() is a thread-pool round trip per call. A string is
  // hashed as its UTF-8 bytes, so the canonical text needs no separate encoding step.
  return createHash("sha256")
    .update(`${c.req.method}\n${pathname}\n`)
    .update(canonicalBody(bytes))
    .digest("hex");
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** JSON bodies hash by meaning (key order and spacing do not matter); anything else by its bytes. */
function canonicalBody(bytes: Uint8Array): Uint8Array | string {
  if (bytes.byteLength === 0) return bytes;
  try {
    return canonicalJson(JSON.parse(strictUtf8.decode(bytes)));
  } catch {
    return bytes;
  }
}

/** Whether `body` is over {@linkcode STORED_RESPONSE_BYTES_MAX} in UTF-8, encoding it only when its length cannot tell. */
function tooLargeToStore(body: string): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes.
  if (body.length * 3 <= STORED_RESPONSE_BYTES_MAX) return false;
  return new TextEncoder().encode(body).byteLength > STORED_RESPONSE_BYTES_MAX;
}

/** JSON text with object keys sorted at every depth. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * Takes the key for this request: inserts an in-flight row, or takes over one that expired or whose
 * in-flight lease ran out. Resolves false when someone else holds the key.
 */
async function claim(
  sql: Sql,
  claim: {
    readonly scope: string;
    readonly key: string;
    readonly requestHash: string;
    readonly started: Date;
    readonly ttlMs: number;
    readonly leaseMs: number;
  },
): Promise<{ readonly priorEffect: string | null } | undefined> {
  const expiresAt = new Date(claim.started.getTime() + claim.ttlMs);
  const leaseStart = new Date(claim.started.getTime() - claim.leaseMs);
  const rows = await sql.query`
    insert into idempotency_keys (user_id, key, request_hash, status, created_at, expires_at)
    values (${claim.scope}, ${claim.key}, ${claim.requestHash}, 'in_flight', ${claim.started}, ${expiresAt})
    on conflict (user_id, key) do update
      set request_hash = excluded.request_hash, status = 'in_flight', response_status = null,
          response_headers = null, response_body = null, created_at = excluded.created_at,
          expires_at = excluded.expires_at,
          -- A stale claim of the same request keeps what its holder did (it died after its effect); an
          -- expired key, or another payload, starts afresh.
          effect_ref = case
            when idempotency_keys.expires_at > ${claim.started} and idempotency_keys.request_hash = excluded.request_hash
            then idempotency_keys.effect_ref
          end
      where idempotency_keys.expires_at <= ${claim.started}
         or (idempotency_keys.status = 'in_flight' and idempotency_keys.created_at <= ${leaseStart})
    returning effect_ref`;
  return rows.length === 1 ? { priorEffect: (rows[0].effect_ref as string | null) ?? null } : undefined;
}

async function release(
  sql: Sql,
  claim: { readonly scope: string; readonly key: string; readonly started: Date },
): Promise<void> {
  const { scope, key, started } = claim;
  try {
    // A claim on which the request recorded an effect (an order was placed, then something failed) is kept,
    // its lease ended at once: the client's retry with the key takes it over and finds that order, instead
    // of placing a second one next to it. A claim with no effect is deleted.
    await sql.query`
      delete from idempotency_keys
      where user_id = ${scope} and key = ${key} and created_at = ${started} and status = 'in_flight'
        and effect_ref is null`;
    await sql.query`
      update idempotency_keys set created_at = ${LEASE_ENDED}
      where user_id = ${scope} and key = ${key} and created_at = ${started} and status = 'in_flight'
        and effect_ref is not null`;
  } catch (error) {
    // The claim then blocks the key until its lease runs out; the client sees 409 and retries later.
    log.warn("could not release an idempotency key", { key, error: String(error) });
  }
}

/** A claim's `created_at` once its holder gave it up: older than any lease, so the next claim takes it over. */
const LEASE_ENDED = new Date(0);

function storedHeadersOf(headers: Headers): Record<string, string> {
  const stored: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (!UNSTORED_HEADERS.has(name)) stored[name] = value;
  });
  return stored;
}

function replay(row: KeyRow): Response {
  const headers = new Headers(row.response_headers ?? {});
  headers.set(IDEMPOTENT_REPLAYED_HEADER, "true");
  return new Response(row.response_body, { status: row.response_status ?? 200, headers });
}

/**
 * Deletes expired keys in bounded batches ({@link deleteInBatches}); resolves with how many it deleted. Run it
 * about once a minute: a run deletes up to 100,000 keys by default, far more than a minute of orders.
 */
export async function purgeExpiredIdempotencyKeys(
  sql: Sql,
  options: { readonly now?: Date; readonly bounds?: PurgeBounds } = {},
): Promise<number> {
  const now = options.now ?? new Date();
  return await deleteInBatches(async (limit) => {
    const rows = await sql.query`
      delete from idempotency_keys where (user_id, key) in (
        select user_id, key from idempotency_keys where expires_at <= ${now} limit ${limit})
      returning key`;
    return rows.length;
  }, options.bounds);
}
