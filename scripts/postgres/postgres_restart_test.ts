/**
 * Restarts the west project cluster (runs alone: `*_restart_test.ts`). Data written before a stop — fast
 * or immediate (a crash: WAL replay) — is there after `ensurePostgres` brings the cluster back.
 */
import assert from "node:assert/strict";
import { withPg } from "../../shared/adapters/postgres/replication.ts";
import { dropDatabase, ensureDatabase } from "../../shared/adapters/postgres/provision.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { clusterUrl, ensurePostgres, stopPostgres } from "./mod.ts";

const quiet = () => {};

Deno.test({
  name: "a stopped or crashed cluster comes back with every committed row",
  ignore: Deno.env.get("BV_TEST_BROKER_RESTARTS") !== "1",
  fn: async () => {
    await ensurePostgres("west", { log: quiet });
    const name = uniqueName("bv_pgrestart");
    await ensureDatabase(clusterUrl("west"), name);
    try {
      await withPg(clusterUrl("west", name), (sql) => sql`create table kept (n int)`);
      for (const mode of ["fast", "immediate"] as const) {
        await withPg(clusterUrl("west", name), (sql) => sql`insert into kept values (1)`);
        assert.equal(await stopPostgres("west", { mode, log: quiet }), true);
        assert.equal(await stopPostgres("west", { log: quiet }), false);
        assert.equal((await ensurePostgres("west", { log: quiet })).started, true);
      }
      const [row] = await withPg(clusterUrl("west", name), (sql) => sql`select count(*)::int as n from kept`);
      assert.equal(row.n, 2);
    } finally {
      await ensurePostgres("west", { log: quiet });
      await dropDatabase(clusterUrl("west"), name);
    }
  },
});
