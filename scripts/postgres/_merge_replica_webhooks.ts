/**
 * @module
 * Before a replica's webhook tables are emptied for the writer's copy — a first link, a link made before webhooks
 * replicated (an upgrade), or such a link whose slot was lost — the partner subscriptions the replica holds on its own
 * are merged into the writer, so the copy brings them back: same id (the partner's URLs and deletes keep working),
 * same sealed secrets (`BV_WEBHOOK_SECRETS_KEY` is one key for both regions), status and dates. Ids are UUIDs, so they
 * never collide with the writer's. Delivery attempts are history and are not merged (the copy brings the writer's).
 */
import { withPg } from "../../shared/adapters/postgres/replication.ts";
import type { OrderDatabases, OrderRegion, ProgressLog } from "./order_replication.ts";

/**
 * Copies every row of the replica's `webhook_subscriptions` into the writer, in one statement there,
 * `on conflict do nothing`: idempotent, so a run that crashed between this and the truncate merges nothing twice.
 * The writer's guard triggers allow the write (its `order_writer` row names itself). Resolves to the rows merged.
 */
export async function mergeReplicaWebhookSubscriptions(
  link: { readonly dbs: OrderDatabases; readonly writer: OrderRegion },
  say: ProgressLog,
): Promise<number> {
  const replica = link.writer === "east" ? "west" : "east";
  // As JSON text, so timestamps keep their microseconds (see _merge_replica_accounts.ts).
  const rows = await withPg(link.dbs[replica], async (sql) => {
    const [row] = await sql`
      select coalesce(jsonb_agg(s), '[]')::text as subscriptions from (
        select id, owner_user_id, url, event_types, secret, previous_secret, previous_secret_expires_at, status,
          disabled_reason, created_at, updated_at
        from webhook_subscriptions) s`;
    return String(row.subscriptions);
  });
  if (rows === "[]") return 0;
  const merged = await withPg(link.dbs[link.writer], async (sql) => {
    const inserted = await sql`
      insert into webhook_subscriptions (id, owner_user_id, url, event_types, secret, previous_secret,
        previous_secret_expires_at, status, disabled_reason, created_at, updated_at)
      select id, owner_user_id, url, event_types, secret, previous_secret, previous_secret_expires_at, status,
        disabled_reason, created_at, updated_at
      from jsonb_to_recordset(${rows}::text::jsonb) as r(id uuid, owner_user_id text, url text, event_types text[],
        secret text, previous_secret text, previous_secret_expires_at timestamptz, status text, disabled_reason text,
        created_at timestamptz, updated_at timestamptz)
      on conflict do nothing returning id`;
    return inserted.length;
  });
  if (merged > 0) {
    say(`[orders] ${merged} webhook subscriptions ${replica} made on its own are merged into ${link.writer}`);
  }
  return merged;
}
