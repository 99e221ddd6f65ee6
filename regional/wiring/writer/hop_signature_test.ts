import assert from "node:assert/strict";
import {
  assertHopSigningKey,
  FORWARDED_FROM_HEADER,
  HOP_ID_HEADER,
  HOP_SIGNATURE_HEADER,
  HOP_SIGNATURE_TOLERANCE_SEC,
  HOP_TIMESTAMP_HEADER,
  signedHopHeaders,
  verifiedHopOf,
} from "./hop_signature.ts";

const KEY = `whsec_${btoa("hop-signing-key-for-tests-32byte")}`;
const OTHER_KEY = `whsec_${btoa("another-key-of-thirty-two-bytes!")}`;
const NOW_SEC = 1_760_000_000;
const now = () => new Date(NOW_SEC * 1000);
const claim = { method: "POST", path: "/api/v1/orders", fromRegion: "west" };

async function signed(overrides: { key?: string; timestampSec?: number } = {}): Promise<Headers> {
  return new Headers(
    await signedHopHeaders(claim, overrides.key ?? KEY, {
      hopId: "hop-1",
      timestampSec: overrides.timestampSec ?? NOW_SEC,
    }),
  );
}

Deno.test("signedHopHeaders() claims the region in x-bv-hop-* headers, never Standard Webhooks' own names", async () => {
  const headers = await signed();
  assert.equal(headers.get(FORWARDED_FROM_HEADER), "west");
  assert.equal(headers.get(HOP_ID_HEADER), "hop-1");
  assert.equal(headers.get(HOP_TIMESTAMP_HEADER), String(NOW_SEC));
  assert.match(headers.get(HOP_SIGNATURE_HEADER) ?? "", /^v1,[A-Za-z0-9+/]+={0,2}$/);
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature", "x-bv-signature"]) {
    assert.equal(headers.get(name), null, name);
  }
});

Deno.test("verifiedHopOf() trusts a claim signed with the key for this method, path and region", async () => {
  const verdict = await verifiedHopOf({ method: "POST", path: "/api/v1/orders", headers: await signed() }, KEY, now);
  assert.deepEqual(verdict, { claimed: true, trusted: true, fromRegion: "west" });
});

Deno.test("verifiedHopOf() reports no claim when x-bv-forwarded-from-region is absent", async () => {
  const headers = await signed();
  headers.delete(FORWARDED_FROM_HEADER);
  assert.deepEqual(await verifiedHopOf({ ...claim, headers }, KEY, now), { claimed: false });
});

Deno.test("verifiedHopOf() does not trust an unsigned, wrongly signed, stale or moved claim", async () => {
  const cases: [string, () => Promise<{ method: string; path: string; headers: Headers }>, string][] = [
    [
      "unsigned",
      () => Promise.resolve({ ...claim, headers: new Headers({ [FORWARDED_FROM_HEADER]: "west" }) }),
      "MISSING_HEADER",
    ],
    ["another key", async () => ({ ...claim, headers: await signed({ key: OTHER_KEY }) }), "NO_MATCHING_SIGNATURE"],
    [
      "stale",
      async () => ({ ...claim, headers: await signed({ timestampSec: NOW_SEC - HOP_SIGNATURE_TOLERANCE_SEC - 1 }) }),
      "TIMESTAMP_TOO_OLD",
    ],
    [
      "future",
      async () => ({ ...claim, headers: await signed({ timestampSec: NOW_SEC + HOP_SIGNATURE_TOLERANCE_SEC + 1 }) }),
      "TIMESTAMP_TOO_NEW",
    ],
    [
      "another path",
      async () => ({ ...claim, path: "/api/v1/carts", headers: await signed() }),
      "NO_MATCHING_SIGNATURE",
    ],
    ["another method", async () => ({ ...claim, method: "PUT", headers: await signed() }), "NO_MATCHING_SIGNATURE"],
    [
      "another region",
      async () => {
        const headers = await signed();
        headers.set(FORWARDED_FROM_HEADER, "east");
        return { ...claim, headers };
      },
      "NO_MATCHING_SIGNATURE",
    ],
    [
      // Signed for path "/api/v1/carts/c x" from "west": the same content as path "/api/v1/carts/c" from "x west".
      "a path's tail shifted into the region",
      async () => {
        const hop = { ...claim, path: "/api/v1/carts/c x" };
        const headers = new Headers(await signedHopHeaders(hop, KEY, { timestampSec: NOW_SEC }));
        headers.set(FORWARDED_FROM_HEADER, "x west");
        return { ...claim, path: "/api/v1/carts/c", headers };
      },
      "BAD_REGION",
    ],
  ];
  for (const [name, request, code] of cases) {
    const verdict = await verifiedHopOf(await request(), KEY, now);
    assert.equal(verdict.claimed && !verdict.trusted && verdict.code, code, name);
  }
});

Deno.test("a hop signature is made only with a key of at least 32 bytes, for a region name", async () => {
  assert.throws(() => assertHopSigningKey("not-a-secret"), TypeError);
  assert.throws(() => assertHopSigningKey(`whsec_${btoa("too short")}`), TypeError);
  assertHopSigningKey(KEY);
  await assert.rejects(signedHopHeaders({ ...claim, fromRegion: "west east" }, KEY), TypeError);
});
