/**
 * @module
 * Access tokens for tests of services that verify tokens: a fresh Ed25519 key, a verifier that trusts only
 * it, and `token()` minting tokens shaped exactly like the security service's (`typ: at+jwt`, EdDSA,
 * `kid`, sub/email/roles/iss/aud/iat/nbf/exp/jti).
 */
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { ACCESS_TOKEN_TYPE, createTokenVerifier, type Role, type TokenVerifier } from "../auth/mod.ts";

export const TEST_ISSUER = "bitvelocity-auth";
export const TEST_AUDIENCE = "bitvelocity";

export interface TestTokens {
  readonly verifier: TokenVerifier;
  /** A valid access token for `userId` with `roles` (default CUSTOMER), valid for `ttlSec` (default 900). */
  token(userId: string, roles?: readonly Role[], options?: { readonly ttlSec?: number }): Promise<string>;
}

export async function createTestTokens(): Promise<TestTokens> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const kid = `test-${crypto.randomUUID()}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" };
  const verifier = createTokenVerifier({
    jwks: () => Promise.resolve({ keys: [jwk] }),
    issuer: TEST_ISSUER,
    audience: TEST_AUDIENCE,
  });
  return {
    verifier,
    token: async (userId, roles = ["CUSTOMER"], options) => {
      const nowSec = Math.floor(Date.now() / 1000);
      return await new SignJWT({ email: `${userId}@test.example`, roles: [...roles] })
        .setProtectedHeader({ alg: "EdDSA", kid, typ: ACCESS_TOKEN_TYPE })
        .setSubject(userId)
        .setIssuer(TEST_ISSUER)
        .setAudience(TEST_AUDIENCE)
        .setIssuedAt(nowSec)
        .setNotBefore(nowSec)
        .setExpirationTime(nowSec + (options?.ttlSec ?? 900))
        .setJti(crypto.randomUUID())
        .sign(privateKey);
    },
  };
}
