import assert from "node:assert/strict";
import { sqlContract } from "../../ports/contract/sql_contract.ts";
import { uniqueName } from "../../testing/unique.ts";
import type { Sql } from "../../ports/sql.ts";
import { createPgliteSql } from "./mod.ts";

// PGlite takes seconds to boot, so the contract shares one in-memory instance; tables are unique per test.
const shared = await createPgliteSql();
// The pool tests need short bounds, so they share a second instance, booted by the first of them.
let bounded: Promise<Sql> | undefined;

sqlContract(
  "pglite",
  () => Promise.resolve({ sql: shared, cleanup: () => Promise.resolve() }),
  async (bounds) => {
    bounded ??= createPgliteSql(bounds);
    // PGlite has one connection: its pool is a pool of one.
    return { sql: await bounded, connections: 1, cleanup: () => Promise.resolve() };
  },
);

Deno.test("[pglite] sql a dataDir-backed database keeps a committed row across close and reopen", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "bv_pglite_" });
  try {
    const first = await createPgliteSql({ dataDir });
    const id = uniqueName("row");
    await first.exec("create table kept (id text primary key)");
    await first.transaction((tx) => tx.query`insert into kept (id) values (${id})`);
    await first.close();
    await assert.rejects(first.query`select 1`, /closed/);

    const second = await createPgliteSql({ dataDir });
    try {
      assert.deepEqual(await second.query`select id from kept`, [{ id }]);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("[pglite] sql shared instances close at the end of the file", async () => {
  await shared.close();
  await (await bounded)?.close();
});
