import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { createTokenVerifier, type Principal, type TokenVerifier } from "./mod.ts";
import { withVerifiedTokenCache } from "./verified_token_cache.ts";

const ISSUER = "https://auth.test";
const AUDIENCE = "bitvelocity-test";
const START_MS = Date.parse("2030-01-01T00:00:00Z");

/** A real EdDSA verifier on an injected clock, counting the verifications that reach it. */
async function setup() {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "EdDSA", use: "sig" };
  const clock = { nowMs: START_MS };
  const real = createTokenVerifier({
    jwks: () => Promise.resolve({ keys: [jwk] }),
    issuer: ISSUER,
    audience: AUDIENCE,
    now: () => clock.nowMs,
  });
  let verified = 0;
  const counting: TokenVerifier = {
    verify(token) {
      verified++;
      return real.verify(token);
    },
  };
  const sign = (expInSec = 900) => {
    const iat = Math.floor(clock.nowMs / 1000);
    return new SignJWT({ sub: "user-1", email: "ada@example.com", roles: ["CUSTOMER"], jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: "EdDSA", kid: "k1", typ: "at+jwt" })
      .setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt(iat).setNotBefore(iat).setExpirationTime(iat + expInSec)
      .sign(privateKey);
  };
  return { clock, counting, sign, verifiedCount: () => verified };
}

Deno.test("withVerifiedTokenCache() verifies a token once and answers the same principal until the TTL", async () => {
  const { clock, counting, sign, verifiedCount } = await setup();
  const cached = withVerifiedTokenCache(counting, { ttlMs: 60_000, now: () => clock.nowMs });
  const token = await sign();
  const first: Principal = await cached.verify(token);
  assert.equal(first.userId, "user-1");
  assert.deepEqual(await cached.verify(token), first);
  assert.equal(verifiedCount(), 1);
  clock.nowMs += 60_000;
  assert.deepEqual(await cached.verify(token), first);
  assert.equal(verifiedCount(), 2, "after the TTL the token is verified again");
});

Deno.test("withVerifiedTokenCache() never serves a token past its exp and never caches a failure", async () => {
  const { clock, counting, sign, verifiedCount } = await setup();
  const cached = withVerifiedTokenCache(counting, { ttlMs: 300_000, now: () => clock.nowMs });
  const token = await sign(30);
  await cached.verify(token);
  clock.nowMs += 31_000 + 60_000; // past exp and past the verifier's 60 s clock tolerance
  await assert.rejects(cached.verify(token), { code: "AUTH.TOKEN_EXPIRED" });
  const [header, payload, signature] = (await sign()).split(".");
  const tampered = `${header}.${payload.slice(0, -2)}AA.${signature}`;
  await assert.rejects(cached.verify(tampered), { code: "AUTH.TOKEN_INVALID" });
  await assert.rejects(cached.verify(tampered), { code: "AUTH.TOKEN_INVALID" });
  assert.equal(verifiedCount(), 4, "the expired token and both tampered attempts went to the verifier");
});

Deno.test("withVerifiedTokenCache() holds at most entriesMax tokens, dropping the oldest", async () => {
  const { clock, counting, sign, verifiedCount } = await setup();
  const cached = withVerifiedTokenCache(counting, { entriesMax: 2, now: () => clock.nowMs });
  const [a, b, c] = [await sign(), await sign(), await sign()];
  for (const token of [a, b, c]) await cached.verify(token);
  await cached.verify(c);
  await cached.verify(b);
  assert.equal(verifiedCount(), 3, "b and c are still cached");
  await cached.verify(a);
  assert.equal(verifiedCount(), 4, "a was dropped as the oldest");
  assert.throws(() => withVerifiedTokenCache(counting, { entriesMax: 0 }), RangeError);
  assert.throws(() => withVerifiedTokenCache(counting, { ttlMs: 3_600_000 }), RangeError);
});
