/**
 * @module
 * Test support: an Ed25519 signing key shaped like the auth service's, its public JWKS (to serve from a
 * fake region), and a signer that can also produce the broken tokens the edge must refuse.
 */
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { ACCESS_TOKEN_TYPE } from "../../shared/auth/verifier.ts";
import { TEST_AUDIENCE, TEST_ISSUER } from "../../shared/testing/test_tokens.ts";

export interface EdgeTestKey {
  readonly kid: string;
  /** The public half as a JWKS entry. */
  readonly jwk: JWK;
  /** A token as the auth service would issue it, with claim and header overrides. */
  sign(
    userId: string,
    overrides?: { readonly claims?: JWTPayload; readonly ttlSec?: number; readonly issuedAgoSec?: number },
  ): Promise<string>;
}

export async function createEdgeTestKey(): Promise<EdgeTestKey> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const kid = `edge-test-${crypto.randomUUID()}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" };
  return {
    kid,
    jwk,
    sign: async (userId, overrides) => {
      const issuedSec = Math.floor(Date.now() / 1000) - (overrides?.issuedAgoSec ?? 0);
      return await new SignJWT({ email: `${userId}@test.example`, roles: ["CUSTOMER"], ...overrides?.claims })
        .setProtectedHeader({ alg: "EdDSA", kid, typ: ACCESS_TOKEN_TYPE })
        .setSubject(userId)
        .setIssuer(TEST_ISSUER)
        .setAudience((overrides?.claims?.aud as string | undefined) ?? TEST_AUDIENCE)
        .setIssuedAt(issuedSec)
        .setNotBefore(issuedSec)
        .setExpirationTime(issuedSec + (overrides?.ttlSec ?? 900))
        .setJti(crypto.randomUUID())
        .sign(privateKey);
    },
  };
}

const encoder = new TextEncoder();

export function base64url(text: string): string {
  let binary = "";
  for (const byte of encoder.encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** An unsigned token (`alg: none`) with the claims of a valid one. */
export function unsignedToken(kid: string, userId: string): string {
  const nowSec = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "none", typ: ACCESS_TOKEN_TYPE, kid }));
  const payload = base64url(JSON.stringify({
    sub: userId,
    email: `${userId}@test.example`,
    roles: ["ADMIN"],
    iss: TEST_ISSUER,
    aud: TEST_AUDIENCE,
    iat: nowSec,
    nbf: nowSec,
    exp: nowSec + 900,
    jti: crypto.randomUUID(),
  }));
  return `${header}.${payload}.`;
}

/** `token` with its payload swapped for one granting ADMIN, signature untouched. */
export function tamperedToken(token: string): string {
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
  return `${header}.${base64url(JSON.stringify({ ...claims, roles: ["ADMIN"] }))}.${signature}`;
}
