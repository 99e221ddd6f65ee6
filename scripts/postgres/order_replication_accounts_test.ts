/**
 * Accounts a replica region made on its own survive linking it to the writer (scripts/postgres/order_replication.ts):
 * upgrading a link made when only orders replicated, and a first link, both merge them into the writer before the
 * replica's auth tables are emptied for the copy. Throw-away databases on the project's east and west clusters.
 */
import assert from "node:assert/strict";
import type { Sql } from "../../shared/ports/mod.ts";
import { REPLICATED_ORDER_TABLES } from "../../regional/ecommerce/orders/writer/mod.ts";
import { linkTablesOnly, loseSlot, withRegionDatabases } from "./_region_databases_for_test.ts";
import { mergeReplicaAccounts } from "./_merge_replica_accounts.ts";
import { ensureOrderReplication, orderSubscriptionName } from "./order_replication.ts";
import { tableParity } from "./table_parity.ts";

const ADMIN_EMAIL = "root@bitvelocity.test";
const HOUR_MS = 3_600_000;

/** An account as the auth service writes it: the user row and its roles, in one transaction. */
async function signUp(sql: Sql, email: string, passwordHash: string, roles: string[] = ["CUSTOMER"]): Promise<string> {
  const id = crypto.randomUUID();
  const at = new Date();
  await sql.transaction(async (tx) => {
    await tx.query`insert into auth_users (id, email, password_hash, created_at)
      values (${id}, ${email}, ${passwordHash}, ${at})`;
    for (const role of roles) {
      await tx.query`insert into auth_user_roles (user_id, role, granted_at) values (${id}, ${role}, ${at})`;
    }
  });
  return id;
}

/** A refresh token (its hash) of `userId`, expiring `expiresInMs` from now, revoked when asked. */
async function session(sql: Sql, userId: string, expiresInMs: number, revoked = false): Promise<string> {
  const hash = crypto.randomUUID().replaceAll("-", "");
  const now = Date.now();
  await sql.query`insert into auth_refresh_tokens (token_hash, user_id, family_id, created_at, expires_at, revoked_at)
    values (${hash}, ${userId}, ${crypto.randomUUID()}, ${new Date(now - HOUR_MS)}, ${new Date(now + expiresInMs)},
      ${revoked ? new Date(now) : null})`;
  return hash;
}

async function account(sql: Sql, email: string): Promise<{ id: string; hash: string; roles: string } | undefined> {
  const [row] = await sql.query<{ id: string; hash: string; roles: string }>`
    select u.id::text as id, u.password_hash as hash,
      (select string_agg(role, ',' order by role) from auth_user_roles r where r.user_id = u.id) as roles
    from auth_users u where u.email = ${email}`;
  return row ? { id: row.id, hash: row.hash, roles: row.roles } : undefined;
}

async function sessions(sql: Sql, hashes: string[]): Promise<string[]> {
  const rows = await sql.query<{ h: string }>`select token_hash as h from auth_refresh_tokens`;
  return rows.map((r) => r.h).filter((h) => hashes.includes(h)).sort();
}

/** The previous release's link: orders only, so each region kept writing its own accounts. */
function linkOrdersOnly(dbs: { east: string; west: string }): Promise<void> {
  return linkTablesOnly(dbs, REPLICATED_ORDER_TABLES);
}

/** East's and west's accounts before the link, each region with its own admin, and one e-mail in both. */
async function accountsInBothRegions(east: Sql, west: Sql) {
  const eastAdmin = await signUp(east, ADMIN_EMAIL, "east-admin-hash", ["ADMIN"]);
  const eastBoth = await signUp(east, "both@example.test", "east-both-hash");
  const westAdmin = await signUp(west, ADMIN_EMAIL, "west-admin-hash", ["ADMIN"]);
  const westOnly = await signUp(west, "west-only@example.test", "west-only-hash", ["CUSTOMER", "PARTNER"]);
  const westBoth = await signUp(west, "both@example.test", "west-both-hash");
  const live = await session(west, westOnly, HOUR_MS);
  const expired = await session(west, westOnly, -1);
  const revoked = await session(west, westOnly, HOUR_MS, true);
  const ofWestBoth = await session(west, westBoth, HOUR_MS);
  return { eastAdmin, eastBoth, westAdmin, westOnly, westBoth, live, expired, revoked, ofWestBoth };
}

/** In both regions: west's own account kept (id, hash, roles, live session), the writer's wherever an e-mail clashed. */
async function assertMerged(
  regions: { east: Sql; west: Sql },
  made: Awaited<ReturnType<typeof accountsInBothRegions>>,
  lines: string[],
): Promise<void> {
  for (const [region, sql] of Object.entries(regions)) {
    assert.deepEqual(
      await account(sql, "west-only@example.test"),
      { id: made.westOnly, hash: "west-only-hash", roles: "CUSTOMER,PARTNER" },
      region,
    );
    assert.deepEqual(await account(sql, "both@example.test"), {
      id: made.eastBoth,
      hash: "east-both-hash",
      roles: "CUSTOMER",
    }, region);
    assert.deepEqual(
      await account(sql, ADMIN_EMAIL),
      { id: made.eastAdmin, hash: "east-admin-hash", roles: "ADMIN" },
      region,
    );
    const tokens = [made.live, made.expired, made.revoked, made.ofWestBoth];
    assert.deepEqual(await sessions(sql, tokens), [made.live], region);
    assert.equal((await sql.query`select 1 from auth_users`).length, 3, region);
  }
  assert.ok(lines.some((l) => l.includes(`"both@example.test" is not merged`)), lines.join("\n"));
  assert.ok(lines.some((l) => l.includes(`"${ADMIN_EMAIL}" is not merged`)), lines.join("\n"));
}

const auth = (t: { table: string }) => t.table.startsWith("auth_") && t.table !== "auth_login_failures";

Deno.test({
  name: "upgrading a link made when only orders replicated keeps the accounts the replica made (writer wins an e-mail)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvau", async ({ dbs, east, west }) => {
      await linkOrdersOnly(dbs);
      const made = await accountsInBothRegions(east, west);
      const lines: string[] = [];
      await ensureOrderReplication(dbs, { log: (line) => lines.push(line) });
      await assertMerged({ east, west }, made, lines);
      assert.ok((await tableParity(dbs)).filter(auth).every((t) => t.equal));
    });
  },
});

Deno.test({
  name: "a first link keeps the accounts the replica made before it, except its admin (the writer's is kept)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvaf", async ({ dbs, east, west }) => {
      const made = await accountsInBothRegions(east, west);
      const lines: string[] = [];
      await ensureOrderReplication(dbs, { log: (line) => lines.push(line) });
      await assertMerged({ east, west }, made, lines);
      assert.ok((await tableParity(dbs)).filter(auth).every((t) => t.equal));
    });
  },
});

Deno.test({
  name: "a link that crashed after merging the replica's accounts merges nothing twice when it runs again",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvac", async ({ dbs, east, west }) => {
      await linkOrdersOnly(dbs);
      const made = await accountsInBothRegions(east, west);
      // What a run did before it crashed, short of emptying west's tables; the role rows it had written first.
      await east.exec("insert into order_writer (local_region, writer_region) values ('east', 'east')");
      const first = await mergeReplicaAccounts({ dbs, writer: "east" }, () => {});
      assert.deepEqual(first, { merged: 1, skippedEmails: ["both@example.test", ADMIN_EMAIL] });
      const lines: string[] = [];
      await ensureOrderReplication(dbs, { log: (line) => lines.push(line) });
      await assertMerged({ east, west }, made, lines);
      assert.ok(!lines.some((l) => l.includes("merged into")), lines.join("\n"));
    });
  },
});

Deno.test({
  name: "upgrading a link made when only orders replicated, whose slot the writer lost, keeps the replica's accounts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bval", async ({ dbs, east, west }) => {
      await linkOrdersOnly(dbs);
      const made = await accountsInBothRegions(east, west);
      await loseSlot(orderSubscriptionName(dbs, "east"));
      const lines: string[] = [];
      const link = await ensureOrderReplication(dbs, { log: (line) => lines.push(line) });
      assert.equal(link.outcome, "re-synced", lines.join("\n"));
      await assertMerged({ east, west }, made, lines);
    });
  },
});
