/**
 * @module
 * Webhook subscriptions of partners: create (the secret is returned once), list, delete, rotate the secret
 * (the previous one keeps signing until the overlap ends), and the reads the dispatcher and the delivery
 * worker need. A partner sees and changes only its own subscriptions; someone else's answers 404.
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql, SqlExecutor } from "../../../shared/ports/mod.ts";
import type { SecretBox } from "./secret_box.ts";
import { generateSecret } from "./signing.ts";

/** Bounds: subscriptions per partner (each one is a fan-out target of every matching event). */
export const SUBSCRIPTION_LIMITS = Object.freeze({ PER_OWNER_MAX: 25, URL_CHARS_MAX: 2048 });

export type SubscriptionStatus = "ACTIVE" | "DISABLED" | "DELETED";

export interface SubscriptionView {
  readonly id: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly status: SubscriptionStatus;
  readonly disabledReason: string | null;
  readonly createdAt: string;
  /** When the previous secret stops signing; null outside a rotation. */
  readonly previousSecretExpiresAt: string | null;
}

interface SubscriptionRow extends Record<string, unknown> {
  id: string;
  owner_user_id: string;
  url: string;
  event_types: string[];
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  status: SubscriptionStatus;
  disabled_reason: string | null;
  created_at: Date;
}

function viewOf(row: SubscriptionRow, now: Date): SubscriptionView {
  const overlapping = row.previous_secret_expires_at !== null && row.previous_secret_expires_at > now;
  return {
    id: row.id,
    url: row.url,
    events: row.event_types,
    status: row.status,
    disabledReason: row.disabled_reason,
    createdAt: row.created_at.toISOString(),
    previousSecretExpiresAt: overlapping ? row.previous_secret_expires_at!.toISOString() : null,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function notFound(id: string): ProblemError {
  return new ProblemError(
    "COMMON.NOT_FOUND",
    `Webhook subscription "${id}" does not exist or is not yours: list yours with GET /api/v1/webhooks/subscriptions`,
  );
}

export async function createSubscription(
  sql: Sql,
  box: SecretBox,
  input: { readonly ownerUserId: string; readonly url: string; readonly events: readonly string[] },
): Promise<SubscriptionView & { secret: string }> {
  const id = crypto.randomUUID();
  const secret = generateSecret();
  const sealed = await box.seal(secret, id);
  const events = [...new Set(input.events)].sort();
  const row = await sql.transaction(async (tx) => {
    // Serialises concurrent creates of one owner, so the limit cannot be overshot by a race.
    await tx.query`select pg_advisory_xact_lock(hashtext(${`webhooks:${input.ownerUserId}`}))`;
    const [{ n }] = await tx.query<{ n: number }>`
      select count(*)::int as n from webhook_subscriptions
      where owner_user_id = ${input.ownerUserId} and status <> 'DELETED'`;
    if (n >= SUBSCRIPTION_LIMITS.PER_OWNER_MAX) {
      throw new ProblemError(
        "COMMON.CONFLICT",
        `You already have ${n} webhook subscriptions, the most allowed: delete one you no longer use first`,
      );
    }
    const [inserted] = await tx.query<SubscriptionRow>`
      insert into webhook_subscriptions (id, owner_user_id, url, event_types, secret)
      values (${id}, ${input.ownerUserId}, ${input.url}, ${events}::text[], ${sealed})
      returning *`;
    return inserted;
  });
  return { ...viewOf(row, new Date()), secret };
}

export async function listSubscriptions(sql: Sql, ownerUserId: string): Promise<SubscriptionView[]> {
  const rows = await sql.query<SubscriptionRow>`
    select * from webhook_subscriptions where owner_user_id = ${ownerUserId} and status <> 'DELETED'
    order by created_at, id limit ${SUBSCRIPTION_LIMITS.PER_OWNER_MAX}`;
  const now = new Date();
  return rows.map((row) => viewOf(row, now));
}

export async function getSubscription(sql: Sql, ownerUserId: string, id: string): Promise<SubscriptionView> {
  return viewOf(await ownRow(sql, ownerUserId, id), new Date());
}

/** Deletes (soft: attempts keep their history); deliveries still queued for it are skipped. */
export async function deleteSubscription(sql: Sql, ownerUserId: string, id: string): Promise<void> {
  if (!UUID.test(id)) throw notFound(id);
  const rows = await sql.query`
    update webhook_subscriptions set status = 'DELETED', updated_at = now()
    where id = ${id} and owner_user_id = ${ownerUserId} and status <> 'DELETED' returning id`;
  if (rows.length === 0) throw notFound(id);
}

/**
 * Replaces the secret. The current one becomes the previous one and keeps signing (beside the new one)
 * for `overlapMs`; a second rotation within the overlap drops the oldest.
 */
export async function rotateSecret(
  sql: Sql,
  box: SecretBox,
  input: { readonly ownerUserId: string; readonly id: string; readonly overlapMs: number },
): Promise<{ id: string; secret: string; previousSecretExpiresAt: string }> {
  const current = await ownRow(sql, input.ownerUserId, input.id);
  const secret = generateSecret();
  const sealed = await box.seal(secret, current.id);
  const expiresAt = new Date(Date.now() + input.overlapMs);
  const rows = await sql.query<{ id: string }>`
    update webhook_subscriptions
    set previous_secret = secret, previous_secret_expires_at = ${expiresAt}, secret = ${sealed}, updated_at = now()
    where id = ${current.id} and owner_user_id = ${input.ownerUserId} and status <> 'DELETED' returning id`;
  if (rows.length === 0) throw notFound(input.id);
  return { id: current.id, secret, previousSecretExpiresAt: expiresAt.toISOString() };
}

async function ownRow(sql: SqlExecutor, ownerUserId: string, id: string): Promise<SubscriptionRow> {
  if (!UUID.test(id)) throw notFound(id);
  const [row] = await sql.query<SubscriptionRow>`
    select * from webhook_subscriptions
    where id = ${id} and owner_user_id = ${ownerUserId} and status <> 'DELETED'`;
  if (!row) throw notFound(id);
  return row;
}

/** Active subscriptions to `eventType` (the dispatcher's fan-out), at most `limit`. */
export async function activeSubscriptionIdsFor(
  sql: SqlExecutor,
  eventType: string,
  limit: number,
): Promise<string[]> {
  const rows = await sql.query<{ id: string }>`
    select id from webhook_subscriptions where status = 'ACTIVE' and event_types @> array[${eventType}]::text[]
    order by id limit ${limit}`;
  return rows.map((r) => r.id);
}

/** What the delivery worker needs: where to send and the secrets that sign now (current first). */
export interface DeliveryTarget {
  readonly id: string;
  readonly url: string;
  readonly status: SubscriptionStatus;
  /** Opened only for an ACTIVE subscription (empty otherwise, or when they cannot be opened). */
  readonly secrets: readonly string[];
  /** Why the secrets of an ACTIVE subscription cannot be opened (a changed secrets key): nothing can be signed. */
  readonly secretsError?: string;
}

export async function deliveryTargetOf(sql: Sql, box: SecretBox, id: string): Promise<DeliveryTarget | undefined> {
  const [row] = await sql.query<SubscriptionRow>`select * from webhook_subscriptions where id = ${id}`;
  if (!row) return undefined;
  const target = { id: row.id, url: row.url, status: row.status };
  // A deleted or disabled subscription's deliveries are skipped: its secrets are not needed, and must not be
  // opened (after a key change they no longer open, and that would hold the delivery forever).
  if (row.status !== "ACTIVE") return { ...target, secrets: [] };
  try {
    const secrets = [await box.open(row.secret, row.id)];
    if (row.previous_secret && row.previous_secret_expires_at && row.previous_secret_expires_at > new Date()) {
      secrets.push(await box.open(row.previous_secret, row.id));
    }
    return { ...target, secrets };
  } catch (error) {
    // The stored value and this process's keys decide it: during a rolling key change another instance (or this one,
    // restarted) may open it, so the caller tries again for a grace window, then fails the delivery for good.
    const reason = error instanceof Error ? error.message : String(error);
    return {
      ...target,
      secrets: [],
      secretsError: `Not sent: the signing secret cannot be opened with the configured ${SECRETS_KEY_VARIABLES} ` +
        `(${reason}); set the key it was sealed with (as the previous key during a key rotation)`,
    };
  }
}

/** The configuration that opens sealed secrets, named in the reason of a delivery that could not be signed. */
const SECRETS_KEY_VARIABLES = "BV_WEBHOOK_SECRETS_KEY / BV_WEBHOOK_SECRETS_KEY_PREVIOUS";

/** A 410 Gone from the endpoint: no more deliveries to this subscription. */
export async function disableSubscription(tx: SqlExecutor, id: string, reason: string): Promise<void> {
  await tx.query`
    update webhook_subscriptions set status = 'DISABLED', disabled_reason = ${reason}, updated_at = now()
    where id = ${id} and status = 'ACTIVE'`;
}
