/**
 * @module
 * Before a replica's auth tables are emptied for the writer's copy — a first link, or a link made before auth
 * replicated (an upgrade) — the accounts the replica made on its own are merged into the writer, so the copy brings
 * them back: same id (orders forwarded under it stay theirs), same password hash, their roles and live sessions.
 * Ids are UUIDs and token hashes SHA-256s, so they never collide; an e-mail can (each region's security made its own
 * admin at its first start; a person may have signed up in both): the writer's account wins and the replica's is
 * reported, not merged. Login-failure counts are not merged (a window of minutes; losing it unlocks early).
 */
import { withPg } from "../../shared/adapters/postgres/replication.ts";
import type { OrderDatabases, OrderRegion, ProgressLog } from "./order_replication.ts";

/** What a merge did: accounts copied into the writer, and the replica's e-mails the writer already had. */
export interface MergedAccounts {
  readonly merged: number;
  readonly skippedEmails: readonly string[];
}

/**
 * Copies the replica's users, their roles and their unexpired, unrevoked refresh tokens into the writer, in one
 * transaction there, `on conflict do nothing`: idempotent, so a run that crashed between this and the truncate
 * merges nothing twice. A user whose e-mail the writer holds under another id is skipped with its roles and tokens.
 * The writer's guard triggers allow the writes (its `order_writer` row names itself). Says what it merged and which
 * e-mails stayed with the writer's account.
 */
export async function mergeReplicaAccounts(
  link: { readonly dbs: OrderDatabases; readonly writer: OrderRegion },
  say: ProgressLog,
): Promise<MergedAccounts> {
  const replica = link.writer === "east" ? "west" : "east";
  const result = await merge(link.dbs[replica], link.dbs[link.writer]);
  for (const email of result.skippedEmails) {
    say(
      `[orders] ${replica}'s account "${email}" is not merged: ${link.writer} has an account with that e-mail (kept)`,
    );
  }
  if (result.merged > 0) {
    say(
      `[orders] ${result.merged} accounts ${replica} made on its own are merged into ${link.writer} (roles, sessions)`,
    );
  }
  return result;
}

async function merge(replicaUrl: string, writerUrl: string): Promise<MergedAccounts> {
  // Rows travel as JSON text: timestamps keep their microseconds (a JS Date would round them to milliseconds). They
  // go back as `text` cast to jsonb in SQL: a parameter typed jsonb would be JSON-encoded again (a string, no array).
  const rows = await withPg(replicaUrl, async (sql) => {
    const [row] = await sql`
      select
        (select coalesce(jsonb_agg(u), '[]') from (select id, email, password_hash, created_at from auth_users) u)::text
          as users,
        (select coalesce(jsonb_agg(r), '[]') from (select user_id, role, granted_at from auth_user_roles) r)::text
          as roles,
        (select coalesce(jsonb_agg(t), '[]') from (
          select token_hash, user_id, family_id, created_at, expires_at, used_at from auth_refresh_tokens
          where revoked_at is null and expires_at > now()) t)::text as tokens`;
    return { users: String(row.users), roles: String(row.roles), tokens: String(row.tokens) };
  });
  if (rows.users === "[]") return { merged: 0, skippedEmails: [] };
  return await withPg(writerUrl, (sql) =>
    sql.begin(async (tx) => {
      const inserted = await tx`
        insert into auth_users (id, email, password_hash, created_at)
        select id, email, password_hash, created_at from jsonb_to_recordset(${rows.users}::text::jsonb)
          as r(id uuid, email text, password_hash text, created_at timestamptz)
        on conflict do nothing returning id`;
      // Not there under its own id after the insert: the writer has the e-mail under another (its account wins).
      const skipped = await tx`
        select r.email from jsonb_to_recordset(${rows.users}::text::jsonb) as r(id uuid, email text)
        where not exists (select 1 from auth_users u where u.id = r.id) order by r.email`;
      await tx`
        insert into auth_user_roles (user_id, role, granted_at)
        select r.user_id, r.role, r.granted_at from jsonb_to_recordset(${rows.roles}::text::jsonb)
          as r(user_id uuid, role text, granted_at timestamptz)
        where exists (select 1 from auth_users u where u.id = r.user_id)
        on conflict do nothing`;
      await tx`
        insert into auth_refresh_tokens (token_hash, user_id, family_id, created_at, expires_at, used_at)
        select t.token_hash, t.user_id, t.family_id, t.created_at, t.expires_at, t.used_at
        from jsonb_to_recordset(${rows.tokens}::text::jsonb) as t(token_hash text, user_id uuid, family_id uuid,
          created_at timestamptz, expires_at timestamptz, used_at timestamptz)
        where exists (select 1 from auth_users u where u.id = t.user_id)
        on conflict do nothing`;
      return { merged: inserted.length, skippedEmails: skipped.map((r) => String(r.email)) };
    }));
}
