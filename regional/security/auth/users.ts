/**
 * @module
 * Users and their roles in SQL. E-mail addresses arrive already normalised (trimmed, lower-case).
 */
import { isRole, type Role, ROLES } from "../../../shared/auth/mod.ts";
import type { SqlExecutor } from "../../../shared/ports/sql.ts";

export interface UserRecord {
  readonly id: string;
  readonly email: string;
  readonly passwordHash: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Inserts a user with `roles`; resolves undefined when the e-mail is taken. */
export async function createUser(
  tx: SqlExecutor,
  user: { readonly email: string; readonly passwordHash: string; readonly roles: readonly Role[] },
  at: Date,
): Promise<string | undefined> {
  const id = crypto.randomUUID();
  // `on conflict` rather than catching 23505: the outcome is data, the same on every adapter.
  const inserted = await tx.query<{ id: string }>`
    insert into auth_users (id, email, password_hash, created_at)
    values (${id}, ${user.email}, ${user.passwordHash}, ${at})
    on conflict (email) do nothing
    returning id`;
  if (inserted.length === 0) return undefined;
  await grantRoles(tx, id, user.roles, at);
  return id;
}

export async function findUserByEmail(tx: SqlExecutor, email: string): Promise<UserRecord | undefined> {
  const [row] = await tx.query<{ id: string; email: string; password_hash: string }>`
    select id, email, password_hash from auth_users where email = ${email}`;
  return row ? { id: row.id, email: row.email, passwordHash: row.password_hash } : undefined;
}

/** True when a user with `id` exists (a malformed id is simply unknown). */
export async function userExists(tx: SqlExecutor, id: string): Promise<boolean> {
  if (!UUID.test(id)) return false;
  const rows = await tx.query`select 1 as found from auth_users where id = ${id}`;
  return rows.length > 0;
}

/** The user's roles in {@linkcode ROLES} order. */
export async function rolesOf(tx: SqlExecutor, userId: string): Promise<Role[]> {
  const rows = await tx.query<{ role: string }>`select role from auth_user_roles where user_id = ${userId}`;
  const held = new Set(rows.map((row) => row.role).filter(isRole));
  return ROLES.filter((role) => held.has(role));
}

/** Adds `roles` to the user (roles already held are kept). */
export async function grantRoles(
  tx: SqlExecutor,
  userId: string,
  roles: readonly Role[],
  at: Date,
): Promise<void> {
  for (const role of new Set(roles)) {
    await tx.query`
      insert into auth_user_roles (user_id, role, granted_at) values (${userId}, ${role}, ${at})
      on conflict do nothing`;
  }
}
