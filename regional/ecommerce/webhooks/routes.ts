/**
 * @module
 * The subscriptions API for PARTNER users (seed 003 section 4, issue 4): create (answers the secret once),
 * list, read, delete, rotate the secret. Paths are absolute, so the wiring mounts the app at "/".
 */
import { Hono } from "hono";
import { z } from "zod";
import { type AuthEnv, requireAuth } from "../../../shared/auth/require_auth.ts";
import type { TokenVerifier } from "../../../shared/auth/verifier.ts";
import { readJson } from "../../../shared/http/json_body.ts";
import { installProblemHandlers } from "../../../shared/http/problem_response.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { WEBHOOK_EVENT_TYPES } from "./dispatcher.ts";
import { EGRESS_VARIABLE, hostRefusalOf, type WebhookEgress } from "./egress_policy.ts";
import type { SecretBox } from "./secret_box.ts";
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  rotateSecret,
  SUBSCRIPTION_LIMITS,
} from "./subscription_store.ts";

export interface WebhookRoutesDeps {
  readonly sql: Sql;
  readonly verifier: TokenVerifier;
  readonly box: SecretBox;
  /** How long the previous secret keeps signing after a rotation. */
  readonly secretOverlapMs: number;
  /** Which destinations may be subscribed (egress_policy.ts). */
  readonly egress: WebhookEgress;
}

/** C0 controls and DEL: the URL parser drops some and percent-encodes others, and PostgreSQL refuses NUL in text. */
// deno-lint-ignore no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

const urlSchema = z.string().max(SUBSCRIPTION_LIMITS.URL_CHARS_MAX).refine((text) => {
  // Stored and shown as given: it must be what is sent to, and storable (no NUL, no lone surrogate).
  if (CONTROL_CHARACTERS.test(text) || !text.isWellFormed() || !URL.canParse(text)) return false;
  const url = new URL(text);
  // Credentials in a URL would be stored and logged; a fragment is never sent; port 0 cannot be connected to.
  return (url.protocol === "https:" || url.protocol === "http:") && !url.username && !url.password && !url.hash &&
    url.port !== "0";
}, {
  message: "must be an absolute http(s) URL without credentials, fragment, port 0 or control characters, " +
    "for example https://example.com/hooks",
});

const createSchema = z.strictObject({
  url: urlSchema,
  events: z.array(z.enum(WEBHOOK_EVENT_TYPES as [string, ...string[]], {
    message: `must be one of ${WEBHOOK_EVENT_TYPES.join(", ")}`,
  })).min(1).max(WEBHOOK_EVENT_TYPES.length * 2),
});

/** The `/api/v1/webhooks/subscriptions…` routes. */
export function createWebhookRoutes(deps: WebhookRoutesDeps): Hono {
  const { sql, box } = deps;
  const app = new Hono<AuthEnv>();
  installProblemHandlers(app as unknown as Hono);
  const partner = requireAuth(deps.verifier, { roles: ["PARTNER"] });
  const base = "/api/v1/webhooks/subscriptions";

  app.post(base, partner, async (c) => {
    const body = await readJson(c, createSchema);
    // Only what the URL itself says is judged here; a name is resolved at each delivery, since DNS can change.
    const refusal = hostRefusalOf(new URL(body.url).hostname, deps.egress);
    if (refusal) {
      const message = `${refusal}, and ${EGRESS_VARIABLE}=${deps.egress} allows public destinations only`;
      throw new ProblemError(
        "ECOMMERCE.WEBHOOK_DESTINATION_NOT_ALLOWED",
        `Webhook URL "${body.url}" is not allowed: ${message}; subscribe a URL reachable on the public internet`,
        { errors: [{ path: "url", message }] },
      );
    }
    const created = await createSubscription(sql, box, {
      ownerUserId: c.get("principal").userId,
      url: body.url,
      events: body.events,
    });
    // The secret appears in this answer only; it is never shown again (rotate to get a new one).
    return c.json(created, 201, { location: `${base}/${created.id}`, "cache-control": "no-store" });
  });

  app.get(base, partner, async (c) => c.json({ items: await listSubscriptions(sql, c.get("principal").userId) }));

  app.get(`${base}/:id`, partner, async (c) => {
    return c.json(await getSubscription(sql, c.get("principal").userId, c.req.param("id")));
  });

  app.delete(`${base}/:id`, partner, async (c) => {
    await deleteSubscription(sql, c.get("principal").userId, c.req.param("id"));
    return c.body(null, 204);
  });

  app.post(`${base}/:id/rotate-secret`, partner, async (c) => {
    const rotated = await rotateSecret(sql, box, {
      ownerUserId: c.get("principal").userId,
      id: c.req.param("id"),
      overlapMs: deps.secretOverlapMs,
    });
    return c.json(rotated, 200, { "cache-control": "no-store" });
  });

  return app as unknown as Hono;
}
