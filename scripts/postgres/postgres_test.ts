import assert from "node:assert/strict";
import {
  clusterLayout,
  clusterUrl,
  ensurePostgres,
  isProjectCluster,
  projectClusterEnv,
  serverDataDirectory,
} from "./mod.ts";

Deno.test("ensurePostgres() is idempotent and the cluster runs with the settings logical replication needs", async () => {
  await ensurePostgres("east", { log: () => {} });
  const lines: string[] = [];
  const again = await ensurePostgres("east", { log: (line) => lines.push(line) });
  assert.deepEqual(again, { region: "east", url: clusterUrl("east"), started: false });
  assert.match(lines.join("\n"), /already up/);
  assert.equal(await serverDataDirectory(clusterLayout("east").port), clusterLayout("east").dataDir);
  const { withPg } = await import("../../shared/adapters/postgres/replication.ts");
  const settings = await withPg(clusterUrl("east"), (sql) =>
    sql`select name, setting from pg_settings
        where name in ('wal_level', 'fsync', 'listen_addresses', 'synchronous_commit', 'max_replication_slots')
        order by name`);
  assert.deepEqual(Object.fromEntries(settings.map((s) => [s.name, s.setting])), {
    fsync: "on",
    listen_addresses: "127.0.0.1",
    max_replication_slots: "32",
    synchronous_commit: "local",
    wal_level: "logical",
  });
});

Deno.test("ensurePostgres() refuses a port held by another server and names the variable to change", async () => {
  Deno.env.set("PG_WEST_PORT", "5432");
  try {
    await assert.rejects(
      ensurePostgres("west", { log: () => {} }),
      /Port 5432 is held by a PostgreSQL server .*PG_WEST_PORT/,
    );
  } finally {
    Deno.env.delete("PG_WEST_PORT");
  }
});

Deno.test("projectClusterEnv() puts unconfigured regions on their clusters and keeps an explicit choice", () => {
  assert.deepEqual(projectClusterEnv({}), { BV_EAST_PG_URL: clusterUrl("east"), BV_WEST_PG_URL: clusterUrl("west") });
  assert.deepEqual(projectClusterEnv({ BV_EAST_PG_URL: "postgres://x@db:5432/postgres" }), {
    BV_WEST_PG_URL: clusterUrl("west"),
  });
  assert.deepEqual(projectClusterEnv({ BV_PG_URL: "postgres://postgres@127.0.0.1:5432/postgres" }), {});
  assert.ok(isProjectCluster("east", clusterUrl("east", "bv_east")));
  assert.ok(!isProjectCluster("east", "postgres://postgres@127.0.0.1:5432/bv_east"));
});
