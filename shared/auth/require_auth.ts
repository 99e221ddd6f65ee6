/**
 * @module
 * Hono middleware that admits a request only with a valid `Authorization: Bearer` access token and,
 * optionally, one of a set of roles. Failures answer `application/problem+json`: 401 with
 * `WWW-Authenticate` (RFC 6750) for a missing or bad token, 403 `AUTH.FORBIDDEN` for a missing role.
 */
import type { MiddlewareHandler } from "hono";
import { ProblemError } from "../contracts/problem.ts";
import { errorToResponse } from "../http/problem_response.ts";
import { isRole, type Role } from "./roles.ts";
import type { Principal, TokenVerifier } from "./verifier.ts";

/** The Hono environment of routes behind {@linkcode requireAuth}: `c.get("principal")`. */
export type AuthEnv = { Variables: { principal: Principal } };

export interface RequireAuthOptions {
  /** The principal must hold at least one of these roles; omitted or empty means any signed-in user. */
  readonly roles?: readonly Role[];
}

const BEARER = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)$/i;

/** Creates the middleware; throws at setup when the verifier or a role is wrong. */
export function requireAuth(
  verifier: TokenVerifier,
  options?: RequireAuthOptions,
): MiddlewareHandler<AuthEnv> {
  if (typeof verifier?.verify !== "function") {
    throw new TypeError("requireAuth requires a token verifier (see createTokenVerifier)");
  }
  const roles = options?.roles ?? [];
  for (const role of roles) {
    if (!isRole(role)) throw new TypeError(`requireAuth got unknown role "${String(role)}"`);
  }
  return async (c, next) => {
    const instance = new URL(c.req.url).pathname;
    const match = BEARER.exec(c.req.header("authorization") ?? "");
    if (!match) {
      return errorToResponse(
        new ProblemError("AUTH.UNAUTHENTICATED", 'Send an access token as "Authorization: Bearer <token>"', {
          headers: { "www-authenticate": 'Bearer realm="bitvelocity"' },
        }),
        instance,
      );
    }
    let principal: Principal;
    try {
      principal = await verifier.verify(match[1]);
    } catch (error) {
      const rendered = errorToResponse(error, instance);
      if (rendered.status === 401) {
        rendered.headers.set("www-authenticate", 'Bearer realm="bitvelocity", error="invalid_token"');
      }
      return rendered;
    }
    if (roles.length > 0 && !roles.some((role) => principal.roles.includes(role))) {
      return errorToResponse(
        new ProblemError("AUTH.FORBIDDEN", `This action requires one of the roles ${roles.join(", ")}`, {
          headers: { "www-authenticate": 'Bearer realm="bitvelocity", error="insufficient_scope"' },
        }),
        instance,
      );
    }
    c.set("principal", principal);
    await next();
    return undefined;
  };
}
