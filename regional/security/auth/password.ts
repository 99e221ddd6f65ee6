/**
 * @module
 * Password hashing with scrypt (a memory-hard KDF) from `node:crypto`, stored as a versioned string
 * `scrypt$N$r$p$salt$hash` (salt and hash base64url) so parameters can be raised later without breaking
 * old hashes. Each hash holds about `128 * N * r` bytes of memory (32 MiB at the defaults) for ~130 ms, so
 * the number of hashes in flight is bounded and excess callers are refused instead of exhausting memory.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { ProblemError } from "../../../shared/contracts/problem.ts";

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** N = 2^15, r = 8, p = 1: about 130 ms and 32 MiB per hash on the project's machines. */
export const SCRYPT_PARAMS_DEFAULT: ScryptParams = Object.freeze({ N: 2 ** 15, r: 8, p: 1 });

const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Stored hashes are data: parameters beyond these are refused so a bad row cannot stall the process. */
const N_MAX = 2 ** 20;
const R_MAX = 16;
const P_MAX = 4;

export interface PasswordHasherOptions {
  /** @default {SCRYPT_PARAMS_DEFAULT} */
  readonly params?: ScryptParams;
  /**
   * Hashes computed at the same time (each on a worker thread, each holding `128 * N * r` bytes).
   * @default {2}
   */
  readonly concurrencyMax?: number;
  /**
   * Callers allowed to wait for a slot; beyond this, `COMMON.RATE_LIMITED` (429).
   * @default {64}
   */
  readonly queueMax?: number;
}

export interface PasswordHasher {
  /** A fresh salt and the encoded hash of `password`. */
  hash(password: string): Promise<string>;
  /** True when `password` matches `encoded`; compares in constant time. False for a malformed `encoded`. */
  verify(password: string, encoded: string): Promise<boolean>;
}

export function createPasswordHasher(options?: PasswordHasherOptions): PasswordHasher {
  const params = options?.params ?? SCRYPT_PARAMS_DEFAULT;
  assertParams(params);
  const limit = createLimiter(options?.concurrencyMax ?? 2, options?.queueMax ?? 64);
  return {
    async hash(password) {
      const salt = randomBytes(SALT_BYTES);
      const hash = await limit(() => derive(password, salt, params, HASH_BYTES));
      return ["scrypt", params.N, params.r, params.p, b64url(salt), b64url(hash)].join("$");
    },
    async verify(password, encoded) {
      const parsed = parseEncoded(encoded);
      if (!parsed) return false;
      const actual = await limit(() => derive(password, parsed.salt, parsed.params, parsed.hash.length));
      return timingSafeEqual(actual, parsed.hash);
    },
  };
}

function derive(
  password: string,
  salt: Uint8Array,
  params: ScryptParams,
  keyLength: number,
): Promise<Uint8Array> {
  // maxmem must exceed 128 * N * r (node's default of 32 MiB is exactly the default cost, and too small).
  const maxmem = 256 * params.N * params.r;
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, keyLength, { ...params, maxmem }, (error, key) => {
      if (error) reject(error);
      else resolve(new Uint8Array(key.buffer, key.byteOffset, key.byteLength));
    });
  });
}

function parseEncoded(
  encoded: string,
): { readonly params: ScryptParams; readonly salt: Uint8Array; readonly hash: Uint8Array } | undefined {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return undefined;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const params = { N, r, p };
  try {
    assertParams(params);
  } catch {
    return undefined;
  }
  const salt = fromB64url(parts[4]);
  const hash = fromB64url(parts[5]);
  if (salt.length < SALT_BYTES || hash.length < HASH_BYTES) return undefined;
  return { params, salt, hash };
}

function assertParams({ N, r, p }: ScryptParams): void {
  const powerOfTwo = Number.isInteger(N) && N > 1 && (N & (N - 1)) === 0;
  if (
    !powerOfTwo || N > N_MAX || !Number.isInteger(r) || r < 1 || r > R_MAX || !Number.isInteger(p) || p < 1 ||
    p > P_MAX
  ) {
    throw new RangeError(`Invalid scrypt parameters N=${N} r=${r} p=${p}`);
  }
}

/** Runs at most `concurrencyMax` tasks at once with at most `queueMax` waiting. */
function createLimiter(concurrencyMax: number, queueMax: number) {
  if (!(concurrencyMax >= 1 && queueMax >= 0)) {
    throw new RangeError("concurrencyMax must be >= 1, queueMax >= 0");
  }
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (running >= concurrencyMax) {
      if (waiting.length >= queueMax) {
        throw new ProblemError("COMMON.RATE_LIMITED", "Too many sign-ins at once; retry in a second", {
          headers: { "retry-after": "1" },
        });
      }
      await new Promise<void>((resolve) => waiting.push(resolve));
    } else {
      running++;
    }
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, so `running` never drops below what is really in use.
      const nextWaiter = waiting.shift();
      if (nextWaiter) nextWaiter();
      else running--;
    }
  };
}

function b64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return new Uint8Array(0);
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
