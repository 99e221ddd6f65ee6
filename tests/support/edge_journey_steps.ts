/**
 * @module
 * Steps of the edge-and-regions journey (`tests/edge_regions_journey_test.ts`) kept out of its body: the forged
 * tokens the edge must refuse, a burst from one client, and a crash of one process by pid.
 */
import type { EdgeTestKey } from "../../edge/testing/test_keys.ts";
import { base64url, tamperedToken } from "../../edge/testing/test_keys.ts";
import { ACCESS_TOKEN_TYPE } from "../../shared/auth/verifier.ts";
import type { RealKeySigner } from "./region_probes.ts";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One token the edge must refuse, and the problem code it must answer with. */
export interface ForgedTokenCase {
  readonly name: string;
  readonly token: string;
  readonly code: "AUTH.TOKEN_EXPIRED" | "AUTH.TOKEN_INVALID";
}

/**
 * The refusal cases of issue 5, each differing from a token the platform would accept in one defect: signed
 * with the region's real key and claims except where the case says otherwise.
 */
export async function forgedTokenCases(signer: RealKeySigner, stranger: EdgeTestKey): Promise<ForgedTokenCase[]> {
  const userId = crypto.randomUUID();
  const nowSec = Math.floor(Date.now() / 1000);
  const unsigned = [
    base64url(JSON.stringify({ alg: "none", typ: ACCESS_TOKEN_TYPE, kid: signer.kid })),
    base64url(JSON.stringify({
      sub: userId,
      email: `${userId}@journey.test`,
      roles: ["ADMIN"],
      iss: signer.issuer,
      aud: signer.audience,
      iat: nowSec,
      nbf: nowSec,
      exp: nowSec + 900,
      jti: crypto.randomUUID(),
    })),
    "",
  ].join(".");
  return [
    // An hour old with a 15-minute lifetime: expired well beyond the verifier's 60 s clock tolerance.
    {
      name: "expired",
      token: await signer.sign(userId, { issuedAgoSec: 3_600, ttlSec: 900 }),
      code: "AUTH.TOKEN_EXPIRED",
    },
    { name: "unknown kid", token: await stranger.sign(userId), code: "AUTH.TOKEN_INVALID" },
    { name: "alg none", token: unsigned, code: "AUTH.TOKEN_INVALID" },
    {
      name: "wrong audience",
      token: await signer.sign(userId, { audience: "someone-else" }),
      code: "AUTH.TOKEN_INVALID",
    },
    // A CUSTOMER token whose payload now claims ADMIN: the signature no longer matches.
    { name: "tampered", token: tamperedToken(await signer.sign(userId)), code: "AUTH.TOKEN_INVALID" },
  ];
}

/** What a burst got back. */
export interface BurstOutcome {
  readonly passed: number;
  readonly limited: number;
  /** No answer at all (connection error, timeout). */
  readonly failed: number;
  /** 429s without a whole-seconds `Retry-After` or without the `COMMON.RATE_LIMITED` problem. */
  readonly limitedMalformed: number;
}

/** Sends `count` GETs of `url` at once with `headers`, and sorts the answers. */
export async function burst(url: string, headers: Record<string, string>, count: number): Promise<BurstOutcome> {
  let passed = 0, limited = 0, failed = 0, limitedMalformed = 0;
  await Promise.all(Array.from({ length: count }, async () => {
    try {
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) });
      if (response.status !== 429) {
        passed++;
        await response.body?.cancel();
        return;
      }
      limited++;
      const retryAfter = response.headers.get("retry-after") ?? "";
      const problem = await response.json().catch(() => ({}));
      const wellFormed = /^[1-9]\d*$/.test(retryAfter) && problem.code === "COMMON.RATE_LIMITED" &&
        response.headers.get("content-type") === "application/problem+json";
      if (!wellFormed) limitedMalformed++;
    } catch {
      failed++;
    }
  }));
  return { passed, limited, failed, limitedMalformed };
}

/** One read of a client that keeps reading: when it was sent and answered, and what came back. */
export interface ReadRecord {
  readonly issuedAt: number;
  readonly doneAt: number;
  /** 0 when no answer came. */
  readonly status: number;
  readonly region: string | null;
}

/** Reads `url` with `headers` one request at a time (25 ms apart) until `stop()`, which resolves with the log. */
export function startReading(url: string, headers: Record<string, string>): {
  readonly log: readonly ReadRecord[];
  stop(): Promise<ReadRecord[]>;
} {
  const log: ReadRecord[] = [];
  let reading = true;
  const loop = (async () => {
    while (reading) {
      const issuedAt = performance.now();
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
      await response?.body?.cancel();
      const region = response?.headers.get("x-bv-region") ?? null;
      log.push({ issuedAt, doneAt: performance.now(), status: response?.status ?? 0, region });
      await sleep(25);
    }
  })();
  return {
    log,
    async stop() {
      reading = false;
      await loop;
      return log;
    },
  };
}

/** SIGKILLs `pid` (a crash: nothing drained) and resolves with `performance.now()` once it is gone. */
export async function killByPid(pid: number): Promise<number> {
  Deno.kill(pid, "SIGKILL");
  for (let i = 0; i < 200; i++) {
    // Gone, or a zombie (exited, not yet reaped by its supervisor).
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
    if (stat === "" || /^\d+ \(.*\) Z/.test(stat)) return performance.now();
    await sleep(10);
  }
  throw new Error(`Process ${pid} did not die within 2 s of SIGKILL`);
}
